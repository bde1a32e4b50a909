"""Escape through the inverted trigger: the audit's trigger scan (:mod:`dfkd.teachers.triggers`)
run on the teacher before distillation, and the recovered trigger used against the backdoor."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..evaluation.domains import from_pixels, to_pixels
from ..losses.kd import kl_div
from ..losses.terms import StepContext
from ..sources.base import Batch, SourceEnv
from ..teachers.triggers import ScanConfig, invert_class
from ..teachers.triggers import stamp as stamp_pixels
from .base import Plugin, register_plugin


def erased_region(mask: torch.Tensor, dilate: int) -> torch.Tensor:
    """Where ``mask`` (``H×W``) is at least half its largest value, widened by ``dilate``
    pixels on every side: 1 inside, 0 outside."""
    inside = (mask >= 0.5 * mask.max()).to(mask.dtype)[None, None]
    return F.max_pool2d(inside, 2 * dilate + 1, stride=1, padding=dilate)[0, 0]


@register_plugin("trigger_filter")
class TriggerFilter(Plugin):
    """Scans the teacher for a trigger at set-up (``probes`` images inverted from it for
    ``probe_steps`` steps, ``scan_steps`` steps per class) and, when a target class is
    suspected (an anomaly index above ``threshold``), uses its recovered mask ``m`` and pattern
    ``p`` in one of three forms (``mode``):

    * ``filter``: distillation samples the teacher assigns to the target lose their KD weight
      when erasing the mask's region (``(1 − m)·x + m·μ``, ``μ`` the dataset's mean pixel
      value, from its normalisation) moves the teacher off the target: the trigger is what
      makes them the target.
    * ``relabel``: a ``portion`` of every batch is stamped with the recovered trigger and the
      student is taught the teacher's answer on the *unstamped* image,
      ``weight · KL(T(x) ‖ S(stamp(x)))`` (Neural Cleanse's unlearning, data-free).
    * ``both``. With ``relabel_flagged: false`` the relabelling leaves out the samples the
      filter gave weight 0 (their answer is the target, so stamping them and teaching that
      answer would teach the recovered trigger as a route to the target).

    ``hard_stamp: true`` stamps the pattern opaquely where the mask is at least half its largest
    value (and nowhere else) in place of the soft mask: the relabelling then shows the student
    the trigger at full strength, not the faint part that sufficed to flip the teacher.

    ``dilate: k`` erases, in place of the soft mask, the region where it is at least half its
    largest value, widened by ``k`` pixels on every side (:func:`erased_region`): an
    inversion recovers the smallest, often faint, part of a trigger that flips the teacher,
    and erasing only that can leave the rest of the trigger working.

    ``rescan``: the set-up scan names the target, but its probes, inverted from the teacher
    pixel by pixel, can lead the inversion to another shortcut to the same class than the
    planted one. With ``rescan`` the plug-in stays idle until the end of the first round whose
    distillation samples it has seen, then inverts the target's trigger again from up to
    ``probes`` of those samples (the images the student is actually shown) and acts from then
    on with that mask and pattern (under DDP, the first process's, broadcast to the others).

    Nothing changes when no class is suspected. Logs ``target`` (−1: none), ``filtered`` (share
    of samples given weight 0), the scan's anomaly index of the target and, with ``rescan``,
    ``rescanned`` (0 until it has run).
    """

    def __init__(
        self, mode: str = "relabel", portion: float = 0.2, weight: float = 1.0, probes: int = 256,
        probe_steps: int = 100, scan_steps: int = 300, threshold: float = 2.0,
        dilate: int = 0, rescan: bool = False,
        relabel_flagged: bool = True, hard_stamp: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        if mode not in ("filter", "relabel", "both"):
            raise ConfigError(f"trigger_filter: mode must be filter, relabel or both, not {mode!r}")
        if not 0 < portion <= 1 or weight < 0 or probes < 2 or min(probe_steps, scan_steps) < 1:
            raise ConfigError(
                "trigger_filter: portion in (0, 1], weight ≥ 0, probes ≥ 2, steps ≥ 1"
            )
        if dilate < 0:
            raise ConfigError(f"trigger_filter: dilate is a number of pixels ≥ 0, not {dilate}")
        self.mode, self.portion, self.weight = mode, portion, weight
        self.probes, self.probe_steps, self.scan_steps = probes, probe_steps, scan_steps
        self.threshold = threshold
        self.dilate, self.rescan, self.relabel_flagged = dilate, rescan, relabel_flagged
        self.hard_stamp = hard_stamp
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.register_buffer("rescanned", torch.zeros((), dtype=torch.bool))
        self._filtered: list[torch.Tensor] = []
        self._seen: list[torch.Tensor] = []  # this round's samples, for the rescan

    def setup(self, env: SourceEnv) -> None:
        from ..teachers.triggers import scan_triggers  # looked up at set-up (tests patch it)

        if env.invert is None:
            raise ConfigError("trigger_filter needs the engine's inversion (SourceEnv.invert)")
        teacher, space = env.teacher, env.data  # the teacher takes the source's inputs
        probes = env.invert(self.probes, self.probe_steps)
        cfg = ScanConfig(steps=self.scan_steps, threshold=self.threshold)
        scan = scan_triggers(teacher, probes, space, cfg, env.seed)
        self.target: int | None = scan["suspected_target"]
        self.index = scan["anomaly_index"][scan["smallest_mask_class"]]
        dev = env.fabric.device
        t = self.target if self.target is not None else 0
        # buffers: a rescanned trigger is checkpointed, and a resumed run acts with it
        self.register_buffer("mask", scan["masks"][t].to(dev))
        self.register_buffer("pattern", scan["patterns"][t].to(dev))
        self._env = (teacher, env.student_logits, space, env.seed)  # both take `space`'s inputs
        self._fabric = env.fabric

    @property
    def acting(self) -> bool:
        """Whether a target is suspected and its trigger is the one to act with."""
        return self.target is not None and (not self.rescan or bool(self.rescanned))

    def _paint(self, x: torch.Tensor, mask: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
        """``x`` (normalised) with ``fill`` (pixels) mixed in through ``mask``."""
        space = self._env[2]
        p = stamp_pixels(to_pixels(x, space.mean, space.std), mask, fill)
        return from_pixels(p, space.mean, space.std)

    def stamp(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (normalised) with the recovered trigger stamped on (opaquely on the mask's
        strong region with ``hard_stamp``)."""
        mask = erased_region(self.mask, 0) if self.hard_stamp else self.mask
        return self._paint(x, mask, self.pattern)

    def erase(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (normalised) with the recovered mask's region (or with ``dilate``, its strong
        region widened) filled with the mean pixel."""
        space = self._env[2]
        mask = erased_region(self.mask, self.dilate) if self.dilate else self.mask
        mean = torch.tensor(space.mean, device=x.device).view(1, -1, 1, 1)
        return self._paint(x, mask, mean)

    def select(self, batch: Batch) -> Batch:
        if self.target is not None and self.rescan and not bool(self.rescanned):
            kept = sum(len(x) for x in self._seen)
            self._seen.append(batch.x.detach()[: max(0, self.probes - kept)])
        if not self.acting or self.mode == "relabel":
            return batch
        teacher = self._env[0]
        on_target = batch.teacher_logits.argmax(1) == self.target
        with torch.no_grad():
            moved = teacher(self.erase(batch.x)).argmax(1) != self.target
        flagged = on_target & moved
        self._filtered.append(flagged.float().mean())  # read once per round, not per step
        return batch.weighted((~flagged).float())

    def distill_terms(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        if not self.acting or self.mode == "filter" or self.weight == 0:
            return {}
        n = len(ctx.x)
        gen = torch.Generator().manual_seed(self._env[3] * 104729 + int(self.calls))
        self.calls += 1
        picked = torch.randperm(n, generator=gen)[: max(1, math.ceil(self.portion * n))]
        picked = picked.to(ctx.x.device)
        student = self._env[1]
        x = ctx.x[picked].detach()
        target = ctx.teacher_logits[picked].detach()
        keep = None if self.relabel_flagged or ctx.weight is None else ctx.weight[picked]
        return {"relabel": self.weight * kl_div(student(self.stamp(x)), target, weight=keep)}

    def round_end(self, info: dict[str, Any]) -> dict[str, float]:
        if self._seen and sum(len(x) for x in self._seen) >= 2:
            self._invert_again(torch.cat(self._seen))
        self._seen = []
        filtered = float(torch.stack(self._filtered).mean()) if self._filtered else 0.0
        self._filtered = []
        target = -1 if self.target is None else self.target
        logs = {"target": float(target), "filtered": filtered, "anomaly_index": self.index}
        return {**logs, "rescanned": float(self.rescanned)} if self.rescan else logs

    def _invert_again(self, samples: torch.Tensor) -> None:
        """The target's trigger inverted from distillation ``samples`` (normalised)."""
        assert self.target is not None
        teacher, _, space, seed = self._env
        cfg = ScanConfig(steps=self.scan_steps)
        pixels = to_pixels(samples, space.mean, space.std).clamp(0, 1)
        gen = torch.Generator().manual_seed(seed * 7919 + 1)
        with torch.enable_grad():
            found = invert_class(teacher, pixels, space, self.target, cfg, gen)
        # every process acts with the first process's trigger (each saw its own samples)
        mask, pattern = self._fabric.broadcast((found["mask"], found["pattern"]), src=0)
        self.mask.copy_(mask)
        self.pattern.copy_(pattern)
        self.rescanned.fill_(True)

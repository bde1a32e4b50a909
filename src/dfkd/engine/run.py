"""Running a config: assemble and check the parts once, launch the loop on every process
(Lightning Fabric), and hand the trained weights back to the caller's student."""

from __future__ import annotations

import copy
import dataclasses
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import FabricConfig, RunConfig, SpeedConfig, safe_load
from ..data import Data, InputMap
from ..errors import ConfigError, DfkdError
from ..io.cards import tensor_state
from ..io.files import load_state
from ..io.runs import check_out_dir
from ..models.heads import rebuild
from ..sources import SourceEnv
from ..teachers.taps import Taps, last_linear
from ..teachers.train import freeze
from .budget import Pacer, size_run
from .handoff import hand_back, handoff_folder, take_back
from .invert import inverted_probes
from .loggers import finalize, make_loggers
from .loop import Loop
from .objective import stat_memory
from .optim import make_optimizer
from .parts import RunParts, assemble, run_config
from .probe import SynthesisProbe
from .replicas import replicas_identical
from .report import CHECKPOINT, FinishHook, Reporter
from .speed import settle_precision, settle_speed, speed_up
from .state import RunState


def seed_all(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run(
    cfg: RunConfig,
    teacher: nn.Module,
    student: nn.Module,
    data: Data,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    stop_after_rounds: int | None = None,
    on_finish: FinishHook | None = None,
    model_data: Data | None = None,
    started: float | None = None,
) -> dict[str, Any]:
    """Run the loop described by ``cfg`` and return the final metrics.

    Args:
        cfg: resolved configuration.
        teacher: the trained classifier (frozen in the worker).
        student: the model to train, already initialised; it holds the trained weights after.
        data: the dataset; its test split is the evaluation split.
        out: output folder (``None``: nothing is written and resume is impossible).
        resume: continue the run in ``out`` from its checkpoint.
        overwrite: replace a run already in ``out``.
        stop_after_rounds: stop (with a checkpoint) after this many rounds of this call.
        on_finish: called with ``(deployed model, metrics, out)`` on the global-zero process to
            write the student's files.
        model_data: ``data`` in the normalisation the teacher expects (and the student will),
            when it differs from the dataset's own: sources synthesise and sample in ``data``'s
            normalisation, whose scale the presets were sized for, and every network input is
            mapped to the teacher's (:class:`dfkd.data.InputMap`); evaluation uses this one.
        started: when the caller's work began (``time.time()``; default: now): a
            ``time_budget`` counts from there.
    """
    from lightning_fabric import Fabric

    started = time.time() if started is None else started
    out_dir = check_out_dir(out, overwrite=overwrite, resume=resume) if out is not None else None
    spaces = Spaces(data, model_data if model_data is not None else data)
    parts = assemble(cfg, teacher, student, spaces.model)  # every check before any output
    cfg = run_config(cfg, parts)
    fabric_cfg, parts.precision = settle_precision(cfg.fabric)
    fabric_kw = fabric_args(fabric_cfg)
    saved = saved_state(cfg, out_dir) if out_dir is not None and resume else None
    loggers = make_loggers(cfg.logger, out_dir, saved["step"] if saved is not None else None)
    fabric = Fabric(**fabric_kw, loggers=loggers)
    # launch(fn) runs fn once per process (spawn strategies) or directly (single device);
    # each process leaves its result in the handoff folder, and this process reads its own
    with rendezvous_kept(), handoff_folder() as handoff:
        fabric.launch(
            _worker, cfg, parts, teacher, student, spaces, out_dir, saved,
            overwrite or resume, stop_after_rounds, on_finish, started, handoff,
        )  # fmt: skip
        metrics, weights = take_back(handoff, fabric.global_rank)
    trained = rebuild(student, metrics["head"]) if "head" in metrics else student
    trained.load_state_dict(weights)  # the caller's module holds the trained weights
    metrics["student"] = trained
    return metrics


def saved_state(cfg: RunConfig, out_dir: Path) -> dict[str, Any] | None:
    """The checkpoint to resume from, after checking that ``cfg`` is the saved run's config."""
    saved_cfg = safe_load((out_dir / "config.yaml").read_text()) or {}
    # a budgeted run was sized when it started: resuming continues that plan
    ignored = ("progress", "time_budget", "logger")
    now = {k: v for k, v in cfg.to_dict().items() if k not in ignored}
    was = {k: v for k, v in saved_cfg.items() if k not in ignored}
    d = config_diff(was, now)
    if d:
        raise DfkdError(
            f"cannot resume '{out_dir}': config differs at {d}; resume with the same settings"
        )
    return load_state(out_dir / CHECKPOINT) if (out_dir / CHECKPOINT).is_file() else None


def config_diff(a: Any, b: Any, path: str = "") -> str | None:
    """The first key where two config dicts differ, as ``'key' (saved …, now …)``; plain values
    are compared before nested sections, so a changed ``method`` is named as such."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(a) | set(b)
        for k in sorted(keys, key=lambda k: (isinstance(a.get(k, b.get(k)), dict), k)):
            d = config_diff(a.get(k), b.get(k), f"{path}.{k}" if path else k)
            if d:
                return d
        return None
    return None if a == b else f"'{path}' (saved {a!r}, now {b!r})"


def fabric_args(fc: FabricConfig) -> dict[str, Any]:
    """``Fabric``'s arguments: the config's, with ``timeout_s`` given to the named DDP strategy."""
    from lightning_fabric.strategies import STRATEGY_REGISTRY, DDPStrategy

    args = {k: v for k, v in vars(fc).items() if k != "timeout_s"}
    if fc.timeout_s is None:
        return args
    # the entry (class and arguments), not the registry's own get(), which builds the strategy
    entry = dict.get(STRATEGY_REGISTRY, fc.strategy, {})
    if not issubclass(entry.get("strategy", object), DDPStrategy):
        raise ConfigError(f"fabric.timeout_s is for the DDP strategies (ddp, ddp_spawn, ...), "
                          f"not '{fc.strategy}': name one, or leave timeout_s null")  # fmt: skip
    strategy = entry["strategy"](**entry["init_params"], timeout=timedelta(seconds=fc.timeout_s))
    return {**args, "strategy": strategy}


#: where the processes of a run meet; Lightning writes them into ``os.environ`` as it launches
RENDEZVOUS = ("MASTER_ADDR", "MASTER_PORT")


@contextmanager
def rendezvous_kept() -> Iterator[None]:
    """Put the caller's rendezvous variables back after a launch: a later run in this process
    then meets on a port of its own, not on one the last run's processes may still hold."""
    kept = {k: os.environ.get(k) for k in RENDEZVOUS}
    try:
        yield
    finally:
        for k, v in kept.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _worker(
    fabric: Any, cfg: RunConfig, parts: RunParts, teacher: nn.Module, student: nn.Module,
    spaces: Spaces, out_dir: Path | None, saved: dict[str, Any] | None, clear_old: bool,
    stop_after_rounds: int | None, on_finish: FinishHook | None, started: float, handoff: Path,
) -> None:  # fmt: skip
    """One process: size a budgeted run, set the parts up on its device, restore or start,
    loop, report, and leave its result in ``handoff``."""
    budget = None
    # settled from the budget the run was given (the sized config has none left)
    speed, parts.speed = settle_speed(cfg.speed, teacher, spaces.model.input_shape,
                                      fabric.device.type, cfg.time_budget)  # fmt: skip
    teacher = speed_up(fabric.to_device(freeze(teacher)), speed)  # once: the trial shares it
    if cfg.time_budget is not None and saved is None:
        seed_all(cfg.seed)

        def trial() -> Loop:  # copies: the run's own parts and student stay untouched
            return build_loop(fabric, cfg, copy.deepcopy(parts), teacher,
                              copy.deepcopy(student), spaces, None, speed)  # fmt: skip

        cfg, budget = size_run(cfg, trial, fabric, out_dir is not None, started)
    seed_all(cfg.seed)
    loop = build_loop(fabric, cfg, parts, teacher, student, spaces, out_dir, speed)
    if budget is not None:
        loop.pacer = Pacer.of(budget, started)
    if saved is not None:
        loop.state.load_state_dict(saved)
        loop.checkpointed = loop.state.round
    else:
        loop.report.start(clear_old)
    loop.fit(stop_after_rounds)
    finalize(fabric)
    metrics = loop.report.metrics(loop.state, student, loop.deployed, loop.teacher)
    if loop.parts.statistics is not None:
        metrics["statistics"] = loop.parts.statistics
    metrics["speed"] = loop.parts.speed
    metrics["precision"] = loop.parts.precision
    if budget is not None:
        metrics["budget"] = {
            **budget,
            "end_round": loop.cfg.end_round,
            "replanned": [dataclasses.asdict(r) for r in loop.cfg.replanned],
            "final_rounds": loop.cfg.rounds,
        }
    if fabric.world_size > 1:  # the ranks' learned weights must not have drifted apart
        metrics["replicas_identical"] = replicas_identical(fabric, {
            "student": dict(student.named_parameters()),
            "source": loop.parts.source.shared_state(),
        })  # fmt: skip
    loop.report.finish(metrics, loop.state, loop.deployed, on_finish)
    if out_dir is not None:
        metrics["out"] = str(out_dir)
    metrics["history"] = loop.state.history
    hand_back(handoff, fabric.global_rank, metrics, tensor_state(loop.deployed))
    close_group(fabric)


def close_group(fabric: Any) -> None:
    """Destroy a multi-process run's process group while every rank is still alive (left to
    exit handlers, gloo's threads could abort a rank as it exits)."""
    if fabric.world_size > 1 and torch.distributed.is_initialized():
        fabric.barrier()
        torch.distributed.destroy_process_group()


def build_loop(
    fabric: Any, cfg: RunConfig, parts: RunParts, teacher: nn.Module, student: nn.Module,
    spaces: Spaces, out_dir: Path | None, speed: SpeedConfig,
) -> Loop:  # fmt: skip
    """The parts on this process's device, in the order that fixes the run's randomness:
    adapters, plug-ins (their parameters join the student's optimiser), the student, the
    source, around ``teacher`` (frozen, on the device, sped up); the student runs as ``speed``
    (settled) says."""
    data, to_model = spaces.source, InputMap(spaces.source, spaces.model)
    if parts.pairs is not None:
        parts.pairs.reset_parameters()  # initialised from the run's seed
        parts.pairs.to(fabric.device)
    env = SourceEnv(fabric=fabric, data=data, teacher=Autocast(teacher, fabric, to_model),
                    student=student, batch_size=cfg.batch_size, seed=cfg.seed,
                    rounds=cfg.rounds, g_steps=cfg.g_steps,
                    teacher_features_dim=features_dim(teacher, parts, data),
                    to_model=to_model)  # fmt: skip
    env.invert = partial(inverted_probes, env.teacher, data, seed=cfg.seed, fabric=fabric)
    parts.plugins.setup(env)
    for p in parts.plugins.plugins:
        p.to(fabric.device)
    params = list(student.parameters()) + parts.plugins.parameters()
    if parts.pairs is not None:
        params += list(parts.pairs.parameters())
    wrapped, optimizer = fabric.setup(speed_up(student, speed), make_optimizer(cfg, params))
    parts.source.setup(env)
    counts = torch.zeros(data.num_classes, dtype=torch.long, device=fabric.device)
    state = RunState(student, optimizer, parts.source, parts.plugins, parts.pairs, counts,
                     stat_memory=stat_memory(parts.synth_terms))  # fmt: skip
    report = Reporter.build(cfg, spaces.model, fabric, teacher, parts.domains, out_dir, data)
    deployed = parts.plugins.deployed(student)
    probe = (SynthesisProbe.build(teacher, spaces.model, to_model, fabric.device)
             if parts.source.made else None)  # fmt: skip
    return Loop(cfg, parts, fabric, teacher, wrapped, student, deployed, state, report, to_model,
                env=env, probe=probe)  # fmt: skip


def features_dim(teacher: nn.Module, parts: RunParts, data: Data) -> int | None:
    """Width of the teacher's penultimate features, when a plug-in needs them."""
    if "teacher_features" not in parts.plugins.needs:
        return None
    layer = last_linear(teacher)
    device = next(teacher.parameters()).device
    with torch.no_grad(), Taps(teacher, inputs=[layer]) as taps:
        teacher(torch.zeros(1, *data.input_shape, device=device))
    return int(taps.inputs[layer].flatten(1).shape[1])


@dataclass
class Spaces:
    """The dataset in the sources' normalisation (``source``: the dataset's own) and in the
    networks' (``model``: the teacher's card's)."""

    source: Data
    model: Data


class Autocast(nn.Module):
    """A frozen model whose forward takes inputs in the sources' normalisation and runs under
    the run's precision (``fabric.autocast``): what sources and plug-ins get as
    ``env.teacher``."""

    def __init__(self, model: nn.Module, fabric: Any, to_model: InputMap) -> None:
        super().__init__()
        self.model = model
        self._context = (fabric, to_model)  # a tuple: not sub-modules, not in state dicts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fabric, to_model = self._context
        with fabric.autocast():
            return self.model(to_model(x))

    def with_model(self, model: nn.Module) -> Autocast:
        """Another model (e.g. a modified copy of this one) behind the same input map and
        precision."""
        return Autocast(model, *self._context)

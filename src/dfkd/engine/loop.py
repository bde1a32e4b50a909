"""The loop every method runs. A round is::

    for g_steps:  synthesis_step()   # draw from the source, score with the teacher, update it
    for kd_steps: distill_step()     # sample, select, train the student on the teacher
    end_round()                      # log, evaluate, checkpoint

Classical KD is this loop with a real-data source and ``g_steps = 0``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import Replanned, RunConfig
from ..data import InputMap
from ..errors import ConfigError, NonFiniteError
from ..losses.terms import StepContext
from ..sources import Batch, SourceEnv
from ..teachers.taps import Taps, last_linear
from .budget import Pacer
from .guard import first_non_finite, non_finite_message
from .objective import TermMeter, frozen, needs_of, teacher_taps, weighted_sum
from .optim import lr_at, set_lr
from .parts import RunParts, synthesis_needs_student
from .probe import SynthesisProbe
from .report import Reporter, short
from .state import RunState


@dataclass
class Loop:
    """One process's view of a run: its parts on the device, the state, and the reporter."""

    cfg: RunConfig
    parts: RunParts
    fabric: Any
    teacher: nn.Module
    student: nn.Module  # as set up by Fabric (DDP-wrapped under DDP)
    student_module: nn.Module  # the plain module: its weights are the student's
    deployed: nn.Module  # what is evaluated and saved
    state: RunState
    report: Reporter
    to_model: InputMap  # the source's normalisation → the networks' (identity for own teachers)
    meter: TermMeter = field(default_factory=TermMeter)
    shown: tuple[torch.Tensor, torch.Tensor] | None = None
    #: what a source or plug-in sees of the run (its rounds follow a re-plan)
    env: SourceEnv | None = None
    #: a budgeted run's pacer: its deadline, and re-plans from its rounds' times
    pacer: Pacer | None = None
    #: the round of the last checkpoint written (or resumed from)
    checkpointed: int | None = None
    #: measures the source's pool against the real test images at each evaluation
    probe: SynthesisProbe | None = None
    # fixed for the run, worked out once (not per step)
    synth_needs: set[str] = field(init=False)
    synth_student: bool = field(init=False)
    synth_selects: bool = field(init=False)
    feature_layer: str | None = field(init=False)

    def __post_init__(self) -> None:
        self.synth_needs = needs_of(self.parts.synth_terms) | set(self.parts.source.synth_needs)
        self.synth_student = synthesis_needs_student(self.parts)
        self.synth_selects = self.parts.plugins.selects_synthesis
        wanted = "teacher_features" in self.parts.plugins.needs
        self.feature_layer = last_linear(self.teacher) if wanted else None

    def fit(self, stop_after_rounds: int | None = None) -> None:
        """Run the remaining rounds (or ``stop_after_rounds`` of them, then checkpoint)."""
        bar = self.report.progress_bar(self.state.round)
        t_start = time.perf_counter() - self.state.timers["wall_s"]
        done = 0
        while self.state.round < self.last_round:
            t_round = time.time()
            self._timed("synthesis_s", self.synthesis_step, self.cfg.g_steps)
            self._timed("distill_s", self.distill_step, 0 if self.warming_up else self.cfg.kd_steps)
            self.state.timers["wall_s"] = time.perf_counter() - t_start
            rounds = self._pace(time.time() - t_round)
            done += 1
            stop = stop_after_rounds is not None and done >= stop_after_rounds
            bar.set_postfix(**self.end_round(stop or rounds is not None))
            if rounds is not None:
                self._replan(rounds)
                bar.total = rounds
            bar.update(1)
            if stop:
                break
        bar.close()

    @property
    def last_round(self) -> int:
        """The round the run ends after (``end_round``, else ``rounds``)."""
        return self.cfg.end_round or self.cfg.rounds

    def _pace(self, round_s: float) -> int | None:
        """A budgeted run's rounds from now on when it re-plans after this round (which then
        checkpoints), else ``None``; when it keeps its plan, this round is the last if another
        like it would end past the deadline. The decisions are rank 0's."""
        if self.pacer is None or self.state.round + 1 >= self.last_round:
            return None
        self.pacer.observe(round_s, student=not self.warming_up)
        rounds = self.pacer.replan(self.cfg, self.state.round + 1, time.time())
        if (rounds := self.fabric.broadcast(rounds, src=0)) is not None:
            return rounds
        if self.fabric.broadcast(self.pacer.late(round_s, time.time()), src=0):
            self.cfg = dataclasses.replace(self.cfg, end_round=self.state.round + 1)
            self.report.resize(self.cfg)
        return None

    def _replan(self, rounds: int) -> None:
        """From the round just checkpointed on, the run has ``rounds`` rounds (its schedules
        stay continuous); ``config.yaml`` records the change after the checkpoint, so that a
        resume from either continues a plan that was really run."""
        r = Replanned(round=self.state.round, rounds=self.cfg.rounds)
        self.cfg = dataclasses.replace(self.cfg, rounds=rounds, end_round=None,
                                       replanned=[*self.cfg.replanned, r])  # fmt: skip
        if self.env is not None:
            self.env.rounds, self.env.replans = rounds, self.cfg.round_replans()
        self.report.resize(self.cfg)

    @property
    def warming_up(self) -> bool:
        """Whether this round only synthesises (``warmup_rounds``)."""
        return self.state.round < self.cfg.warmup

    def _timed(self, timer: str, step: Callable[[], None], n: int) -> None:
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        self.state.timers[timer] += time.perf_counter() - t0

    # --- synthesis -------------------------------------------------------------------------------

    def synthesis_step(self) -> None:
        """One update of the source on the synthesis terms (and plug-ins' terms)."""
        self.student.eval()
        batch = self.parts.source.draw()
        if self.synth_selects:  # plug-ins pick what the terms see
            batch = self.parts.plugins.select_synthesis(self._with_teacher(batch))
            if len(batch) == 0:
                return
        terms, with_student = self.parts.synth_terms, self.synth_student
        if self.warming_up:  # the student's terms wait for the warm-up to end
            terms = [t for t in terms if "student" not in t.needs]
            with_student = bool(self.parts.plugins)
        taps_for = teacher_taps(self.teacher, self.synth_needs, self.parts.stats)
        with self.fabric.autocast(), taps_for as taps:
            x = self.to_model(batch.x)
            t_logits = self.teacher(x)
            s_logits = None
            if with_student:
                with frozen(self.student_module):
                    s_logits = self.student_module(x)
        memory = self.state.stat_memory
        seen = {**(taps.as_context() if taps else {}), **(memory.context() if memory else {})}
        ctx = StepContext("synth", batch.x, t_logits, s_logits, batch.labels, batch.weight,
                          taps=seen, extras=batch.extras)  # fmt: skip
        extra = {**self.parts.plugins.synth_terms(ctx), **self.parts.source.synth_terms(ctx)}
        loss, values = weighted_sum(terms, ctx, extra)
        if self.warming_up and not (terms or extra):  # known without reading a tensor
            raise ConfigError(
                f"method '{self.cfg.method}' has no synthesis term without the student to warm "
                f"up on; set warmup_rounds=0 (it is {self.cfg.warmup_rounds})"
            )
        self.parts.source.update(loss)
        self.meter.add({**values, "loss": loss}, "synth/")
        if memory is not None:
            memory.observe(ctx)

    def _with_teacher(self, batch: Batch) -> Batch:
        """``batch`` with the teacher's logits (no gradient; detached inputs)."""
        with torch.no_grad(), self.fabric.autocast():
            return batch.replace(teacher_logits=self.teacher(self.to_model(batch.x.detach())))

    # --- distillation ----------------------------------------------------------------------------

    def distill_step(self) -> None:
        """One student step on a (selected) batch from the source."""
        self.student.train()
        batch = self.distill_batch()
        if len(batch) == 0:
            return
        self.parts.plugins.observe(batch)
        self._record(batch)
        s_logits, taps = self._student_forward(batch)
        ctx = StepContext("distill", batch.x, batch.teacher_logits, s_logits, batch.labels,
                          batch.weight, taps=taps, extras=batch.extras)  # fmt: skip
        loss, values = weighted_sum(
            self.parts.distill_terms, ctx, self.parts.plugins.distill_terms(ctx)
        )
        lr = lr_at(self.state.step, self.total_steps, self.cfg, self.cfg.step_replans())
        set_lr(self.state.optimizer, lr)
        self.state.optimizer.zero_grad(set_to_none=True)
        self.fabric.backward(loss)
        self.state.optimizer.step()
        self.state.step += 1
        self.meter.add({**values, "loss": loss})

    @property
    def total_steps(self) -> int:
        return (self.cfg.rounds - self.cfg.warmup) * self.cfg.kd_steps

    def distill_batch(self) -> Batch:
        """A distillation batch after the plug-ins' selection, refilled to ``batch_size`` from
        up to ``fill_selected`` further draws."""
        kept: list[Batch] = []
        for _ in range(1 + self.cfg.fill_selected):
            b = self._labelled(self.parts.source.sample(self.cfg.batch_size))
            kept.append(self.parts.plugins.select(b))
            if sum(len(k) for k in kept) >= self.cfg.batch_size:
                break
        batch = Batch.cat(kept)
        if len(batch) > self.cfg.batch_size and self.cfg.fill_selected:
            batch = batch.subset(torch.arange(self.cfg.batch_size, device=batch.x.device))
        return batch

    def _labelled(self, batch: Batch) -> Batch:
        """``batch`` with the teacher's logits (kept when the source gave them), and its
        penultimate features when a plug-in declared that need (one forward, under autocast,
        no gradient)."""
        layer = self.feature_layer
        if layer is None:  # a pool that keeps its images' logits has labelled the batch
            return batch if batch.teacher_logits is not None else self._with_teacher(batch)
        with torch.no_grad(), self.fabric.autocast(), Taps(self.teacher, inputs=[layer]) as tp:
            logits = self.teacher(self.to_model(batch.x))
        return batch.replace(teacher_logits=logits, teacher_features=tp.inputs[layer])

    def _record(self, batch: Batch) -> None:
        """Count the teacher's classes of what the student trains on (on the device)."""
        assert batch.teacher_logits is not None
        predicted = batch.teacher_logits.argmax(1)
        counts = self.state.class_counts
        # index_add_, not bincount: bincount on a GPU waits for the host to size its output
        ones = torch.ones(len(predicted), dtype=counts.dtype, device=counts.device)
        counts.index_add_(0, predicted.to(counts.device), ones)
        self.shown = (batch.x.detach(), predicted)

    def _student_forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, Any]]:
        """Adjusted student logits and, when terms pair layers, the paired features."""
        pairs, x = self.parts.pairs, self.to_model(batch.x)
        if pairs is None:
            return self.parts.plugins.adjust_logits(batch, self.student(x)), {}
        with torch.no_grad(), Taps(self.teacher, layers=pairs.teacher_paths) as tt:
            self.teacher(x)
        with Taps(self.student_module, layers=pairs.student_paths) as st:
            s_logits = self.parts.plugins.adjust_logits(batch, self.student(x))
        return s_logits, {"pairs": pairs(st.outputs, tt.outputs)}

    # --- end of a round --------------------------------------------------------------------------

    def end_round(self, stopping: bool = False) -> dict[str, str]:
        """Log the round; evaluate and checkpoint when due. Returns the progress-bar fields."""
        r, st = self.state.round, self.state
        if st.stat_memory is not None:
            st.stat_memory.commit()
        logs = {**self.parts.source.round_end(r),
                **self.parts.plugins.round_end({"round": r, "step": st.step})}  # fmt: skip
        st.last_terms = self.meter.means()
        self._stop_if_non_finite(st.last_terms, r + 1)
        logs["lr"] = float(self.state.optimizer.param_groups[0]["lr"])
        self.report.log({**st.last_terms, **logs}, st.step)
        st.round = r + 1
        last = st.round == self.last_round
        fields = short(st.last_terms)
        if st.round % self.cfg.eval_every == 0 or last:
            logs.update(self._measure_synthesis())
            row = self.report.evaluate(self.deployed, st, logs)
            self.report.save_samples(self.shown, st.step)
            fields = {"acc": f"{row['student_accuracy']:.3f}", **fields}
        due = st.round % self.cfg.checkpoint_every == 0 or last or stopping
        if self.report.out_dir is not None and due:
            self.report.checkpoint(st, self.checkpointed)
            self.checkpointed = st.round
        return fields

    def _measure_synthesis(self) -> dict[str, float]:
        """The pool's precision and recall (for the evaluation row); the per-class figures and
        the pool's class histogram go to ``state.synthesis``."""
        if self.probe is None:
            return {}
        found = self.probe.measure(self.parts.source)
        hist = self.parts.source.pool_histogram()
        if not found and hist is None:
            return {}
        self.state.synthesis.append({
            "round": self.state.round,
            "wall_s": self.state.timers["wall_s"],
            **({"pool_histogram": hist.tolist()} if hist is not None else {}),
            **{k: v for k, v in found.items() if k.startswith("class_")},
        })  # fmt: skip
        return {k: v for k, v in found.items() if not k.startswith("class_")}

    def _stop_if_non_finite(self, terms: dict[str, float], round_no: int) -> None:
        """Stop (every process) when a logged term of this round is NaN or infinite: nothing of
        this round is evaluated, logged or checkpointed."""
        found = first_non_finite(terms)
        bad = found is not None
        if self.fabric.world_size > 1:
            flag = torch.tensor(float(bad), device=self.fabric.device)
            bad = bool(self.fabric.all_reduce(flag, reduce_op="sum") > 0)
        if bad:
            raise NonFiniteError(non_finite_message(found, round_no, self.checkpointed))

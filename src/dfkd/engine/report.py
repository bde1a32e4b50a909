"""Reporting: evaluations, the progress bar, ``history.csv``, ``samples.png``, the final
metrics and the run's output files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from ..config import RunConfig
from ..data import Data
from ..errors import DfkdError
from ..evaluation.metrics import (
    accuracy,
    agreement,
    class_accuracy,
    class_balance,
    class_coverage,
    last_k_mean,
    predict,
)
from ..evaluation.ood import METRICS as OOD_METRICS
from ..evaluation.ood import DomainEval
from ..io.files import atomic_write_bytes, atomic_write_text, save_state, write_json
from ..io.images import class_grid, encode_png
from ..io.runs import clear_run_files, write_history
from ..models.heads import Headed
from .loggers import log_image, numeric
from .state import RunState

CHECKPOINT = "checkpoint.safetensors"
FinishHook = Callable[[nn.Module, dict[str, Any], Path], None]


@dataclass
class Reporter:
    """Evaluates the deployed model on the test split (and extra domains) and writes the run's
    files; only the global-zero process writes. ``data`` is in the networks' normalisation,
    ``source_data`` in the sources' (what ``samples.png`` shows)."""

    cfg: RunConfig
    data: Data
    fabric: Any
    domains: DomainEval | None
    out_dir: Path | None
    t_test: torch.Tensor
    teacher_accuracy: float
    teacher_domain: dict[str, float]
    source_data: Data
    #: the last evaluation's per-class accuracy of the deployed model
    last_class_accuracy: list[float] | None = None

    @classmethod
    def build(
        cls, cfg: RunConfig, data: Data, fabric: Any, teacher: nn.Module,
        domains: DomainEval | None, out_dir: Path | None, source_data: Data,
    ) -> Reporter:  # fmt: skip
        """Predict the teacher on the evaluation split once."""
        with fabric.autocast():
            t_test = predict(teacher, data.x_test, cfg.eval_batch_size, fabric.device)
        bound = domains.bind_teacher(teacher, fabric.device) if domains else {}
        return cls(cfg, data, fabric, domains, out_dir, t_test,
                   accuracy(t_test, data.y_test), bound, source_data)  # fmt: skip

    @property
    def writes(self) -> bool:
        return self.out_dir is not None and self.fabric.is_global_zero

    def progress_bar(self, start_round: int) -> tqdm:
        show = self.cfg.progress and self.fabric.is_global_zero
        return tqdm(total=self.cfg.rounds, initial=start_round, desc=self.cfg.method,
                    unit="round", disable=None if show else True, dynamic_ncols=True)  # fmt: skip

    def resize(self, cfg: RunConfig) -> None:
        """The run now ends earlier (``end_round``): its ``config.yaml`` says so."""
        self.cfg = cfg
        if self.writes:
            assert self.out_dir is not None
            atomic_write_text(self.out_dir / "config.yaml", cfg.to_yaml())

    def start(self, clear_old: bool) -> None:
        """A new run: the folder, cleared of an overwritten run's files, and ``config.yaml``."""
        if not self.writes:
            return
        assert self.out_dir is not None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if clear_old:
            clear_run_files(self.out_dir)
        atomic_write_text(self.out_dir / "config.yaml", self.cfg.to_yaml())

    def evaluate(self, model: nn.Module, state: RunState, logs: dict[str, float]) -> dict:
        """One row of the evaluation curve (appended to ``state.history``)."""
        s_test = predict(model, self.data.x_test, self.cfg.eval_batch_size, self.fabric.device)
        self.last_class_accuracy = class_accuracy(s_test, self.data.y_test, self.data.num_classes)
        row = {
            "round": state.round,
            "step": state.step,
            "student_accuracy": accuracy(s_test, self.data.y_test),
            "agreement": agreement(s_test, self.t_test),
            **(self.domains(model, self.fabric.device) if self.domains else {}),
            **state.timers,
            **state.last_terms,
            **logs,
        }
        state.history.append(row)
        logged = {**state.last_terms, **logs}  # streamed by the round already
        self.log({k: v for k, v in row.items() if k not in logged}, state.step)
        return row

    def log(self, values: dict[str, Any], step: int) -> None:
        """Stream ``values`` (their numbers) to the run's loggers."""
        if self.writes and self.fabric.loggers:
            self.fabric.log_dict(numeric(values), step=step)

    def save_samples(self, shown: tuple[torch.Tensor, torch.Tensor] | None, step: int) -> None:
        """``samples.png``: the last distillation batch, by the teacher's predicted class (also
        to the loggers that keep images)."""
        if self.writes and shown is not None:
            assert self.out_dir is not None
            x, predicted = shown
            grid = class_grid(self.source_data.denormalize(x.float()), predicted.cpu(),
                              self.data.num_classes)  # fmt: skip
            atomic_write_bytes(self.out_dir / "samples.png", encode_png(grid))
            log_image(self.fabric, "samples", grid, step)

    def checkpoint(self, state: RunState, previous: int | None = None) -> None:
        """Write the run state (every process takes part). A write that fails (a full disk, a
        folder made read-only) stops the run in one line; the file is replaced only by a
        complete new one, so the checkpoint of round ``previous`` stays intact."""
        assert self.out_dir is not None
        path = self.out_dir / CHECKPOINT
        blob = state.state_dict()
        failed = None
        if self.fabric.is_global_zero:
            try:
                save_state(path, blob)
            except OSError as e:
                kept = (f"the checkpoint of round {previous} is intact" if previous
                        else "no earlier checkpoint exists")  # fmt: skip
                failed = (f"writing the checkpoint of round {state.round} to '{path}' failed "
                          f"({e.strerror or e}); {kept}: free space or fix the folder's "
                          "permissions, then --resume")  # fmt: skip
        failed = self.fabric.broadcast(failed, src=0)
        if failed:
            raise DfkdError(failed)
        self.fabric.barrier()

    def metrics(
        self, state: RunState, student: nn.Module, deployed: nn.Module, teacher: nn.Module
    ) -> dict:
        """The final metrics (figures of the last evaluation; nothing selected)."""
        final = state.history[-1] if state.history else {}
        completed = bool(final) and final["round"] == (self.cfg.end_round or self.cfg.rounds)
        counts = state.class_counts.cpu()
        shares = (counts / counts.sum().clamp_min(1)).tolist()
        return {
            "method": self.cfg.method,
            "dataset": self.data.name,
            "completed": completed,
            "teacher_accuracy": self.teacher_accuracy,
            "student_accuracy": final.get("student_accuracy", float("nan")),
            "agreement": final.get("agreement", float("nan")),
            "acc_last5": last_k_mean([h["student_accuracy"] for h in state.history], 5),
            "class_accuracy": self.last_class_accuracy,
            "teacher_class_accuracy": self.teacher_class_accuracy(),
            **({**self.domains.describe(), **self.teacher_domain} if self.domains else {}),
            **{k: final[k] for k in OOD_METRICS if k in final},
            "rounds": state.round,
            "steps": state.step,
            **{k: round(v, 3) for k, v in state.timers.items()},
            "threads": torch.get_num_threads(),  # CPU threads of this process (OMP_NUM_THREADS)
            "loss_terms": state.last_terms,
            # teacher-predicted class shares of everything the student was distilled on
            "synthetic_class_histogram": shares,
            "uncovered_classes": class_coverage(shares) if counts.sum() else [],
            "class_balance": class_balance(shares),
            **synthesis_summary(state.synthesis, final),
            "seed": self.cfg.seed,
            "student_parameters": sum(p.numel() for p in student.parameters()),
            **({"head": deployed.record()} if isinstance(deployed, Headed) else {}),
            "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
        }

    def teacher_class_accuracy(self) -> list[float]:
        """The teacher's accuracy on each class of the evaluation split."""
        return class_accuracy(self.t_test, self.data.y_test, self.data.num_classes)

    def finish(
        self, metrics: dict, state: RunState, deployed: nn.Module, on_finish: FinishHook | None
    ) -> None:
        """``history.csv``, the student's files and, last, ``metrics.json`` (a finished run)."""
        if not (self.writes and metrics["completed"]):
            return
        assert self.out_dir is not None
        write_history(self.out_dir / "history.csv", state.history)
        if on_finish is not None:
            on_finish(deployed, metrics, self.out_dir)
        write_json(self.out_dir / "metrics.json", metrics)


def synthesis_summary(records: list[dict[str, Any]], final: dict[str, Any]) -> dict[str, Any]:
    """What the pool held at the last evaluation (its class histogram and coverage, precision
    and recall, the target hit rate), and every evaluation's record."""
    if not records:
        return {}
    last = records[-1]
    out: dict[str, Any] = {k: final[k] for k in SYNTH_FIGURES if k in final}
    if "pool_histogram" in last:
        hist = last["pool_histogram"]
        shares = [h / max(1, sum(hist)) for h in hist]
        out["pool_class_histogram"] = hist
        out["pool_uncovered_classes"] = class_coverage(shares) if sum(hist) else []
    if "class_recall" in last:
        out["synth_class_recall"] = last["class_recall"]
        out["synth_class_precision"] = last["class_precision"]
    return {**out, "synthesis": records}


#: the synthesis figures of an evaluation row that the final metrics repeat
SYNTH_FIGURES = ("synth_hit_rate", "pool_coverage", "pool_balance", "synth_precision",
                 "synth_recall", "synth_feature_scale")  # fmt: skip


def short(terms: dict[str, float]) -> dict[str, str]:
    """The first few logged values, formatted for the progress bar."""
    return {k.replace("/", "_"): f"{v:.3g}" for k, v in list(terms.items())[:6]}

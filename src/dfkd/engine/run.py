"""The one loop every method runs: synthesis phase, distillation phase, plug-in seam.

::

    for round in rounds:
        for g_steps:  batch = source.draw(); t = teacher(x); s = student(x)
                      source.update(Σ w·synth_terms + plugin synth terms)
        for kd_steps: batch = source.sample(); batch.teacher_logits = teacher(x)
                      batch = plugins.select(batch); s = plugins.adjust_logits(batch, student(x))
                      step student on Σ w·distill_terms + plugin distill terms
        plugins.round_end(); evaluate / log / checkpoint

Classical KD is this loop with a real-data source and ``g_steps = 0``.
"""

from __future__ import annotations

import inspect
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn
from tqdm import tqdm

from ..config import RunConfig, safe_load
from ..data import Data
from ..errors import ConfigError, DfkdError, did_you_mean
from ..evaluation.metrics import accuracy, agreement, last_k_mean, predict
from ..evaluation.ood import METRICS as OOD_METRICS
from ..evaluation.ood import DomainEval
from ..io.cards import tensor_state
from ..io.files import atomic_write_text, load_state, save_state, write_json
from ..io.images import save_class_grid
from ..io.runs import check_out_dir, clear_run_files, write_history
from ..losses.terms import TERMS, StepContext
from ..methods import METHODS, Method
from ..plugins import PluginSet, build_plugins
from ..plugins.compensation import Compensated, head_from_config
from ..schedules import cosine_decay
from ..sources import Batch, Source, SourceEnv, build_source
from ..teachers.stats import TeacherStats
from ..teachers.taps import Taps, bn_layers, last_linear
from ..teachers.train import freeze
from .pairs import FeaturePairs

CHECKPOINT = "checkpoint.safetensors"


# --- objective terms ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BoundTerm:
    """A registered term with its weight and hyper-parameters."""

    name: str
    fn: Callable[..., torch.Tensor]
    weight: float
    kwargs: dict[str, Any]
    needs: tuple[str, ...]

    def __call__(self, ctx: StepContext) -> torch.Tensor:
        return self.fn(ctx, **self.kwargs)


def bind_terms(specs: dict[str, dict[str, Any]], phase: str) -> list[BoundTerm]:
    """Resolve ``{name: {weight, **hparams}}`` against the term registry, checking each."""
    group = f"{phase}_terms"
    out = []
    for name, raw in specs.items():
        entry = TERMS.entry(name)
        if entry.tags["phase"] not in (phase, "any"):
            raise ConfigError(
                f"term '{name}' is a {entry.tags['phase']} term; it cannot be in {group}"
            )
        kwargs = dict(raw)
        weight = float(kwargs.pop("weight", 1.0))
        params = list(inspect.signature(entry.obj).parameters)[1:]
        for k in kwargs:
            if k not in params:
                raise ConfigError(
                    f"term '{group}.{name}' takes no option '{k}' (takes {[*params, 'weight']})"
                )
        if weight != 0.0:
            out.append(BoundTerm(name, entry.obj, weight, kwargs, tuple(entry.tags["needs"])))
    return out


def weighted_sum(
    terms: list[BoundTerm], ctx: StepContext, extra: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and the unweighted value of each term (plug-in terms come pre-weighted)."""
    values = {t.name: t(ctx) for t in terms}
    total = sum(
        (t.weight * values[t.name] for t in terms), start=torch.zeros((), device=ctx.x.device)
    )
    for v in extra.values():
        total = total + v
    return total, {**values, **extra}


# --- optimiser and schedule --------------------------------------------------------------------


def make_optimizer(cfg: RunConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """The student's optimiser from ``cfg.optimizer``."""
    o = cfg.optimizer
    builders: dict[str, Callable[[], torch.optim.Optimizer]] = {
        "sgd": lambda: torch.optim.SGD(
            params,
            lr=o.lr,
            momentum=o.momentum,
            nesterov=o.nesterov and o.momentum > 0,
            weight_decay=o.weight_decay,
        ),
        "adam": lambda: torch.optim.Adam(
            params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay
        ),
        "adamw": lambda: torch.optim.AdamW(
            params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay
        ),
    }
    if o.name not in builders:
        raise ConfigError(
            f"unknown optimizer '{o.name}'{did_you_mean(o.name, builders)} "
            f"(choose from {sorted(builders)})"
        )
    return builders[o.name]()


SCHEDULES = ("constant", "cosine")


def lr_at(step: int, total: int, cfg: RunConfig) -> float:
    """Learning rate of student step ``step`` (0-based) out of ``total``: linear warm-up, then
    constant or cosine decay to ``min_lr``. Pure, so resuming needs no scheduler state."""
    o = cfg.optimizer
    if o.warmup_steps and step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    if o.schedule == "constant":
        return o.lr
    return cosine_decay(o.lr, (step - o.warmup_steps) / max(1, total - o.warmup_steps), o.min_lr)


# --- the run -----------------------------------------------------------------------------------


@dataclass
class RunParts:
    """Everything built and checked before the loop starts."""

    method: Method
    source: Source
    plugins: PluginSet
    synth_terms: list[BoundTerm]
    distill_terms: list[BoundTerm]


def build_parts(cfg: RunConfig) -> RunParts:
    """Resolve every name in ``cfg`` and check that the parts fit together, before any work."""
    method = METHODS.get(cfg.method)
    if cfg.optimizer.schedule not in SCHEDULES:
        raise ConfigError(
            f"unknown schedule '{cfg.optimizer.schedule}'"
            f"{did_you_mean(cfg.optimizer.schedule, SCHEDULES)}"
        )
    source = build_source(cfg.source.name, cfg.source.args)
    synth = bind_terms(cfg.synth_terms, "synth")
    distill = bind_terms(cfg.distill_terms, "distill")
    if cfg.g_steps > 0 and not source.synthesizes:
        raise ConfigError(f"source '{cfg.source.name}' does not synthesise; set g_steps: 0")
    if cfg.g_steps > 0 and not synth:
        raise ConfigError("g_steps > 0 but synth_terms is empty; name at least one synthesis term")
    if cfg.kd_steps > 0 and not distill:
        raise ConfigError("distill_terms is empty; name at least one distillation term")
    for t in distill + synth:
        if "labels" in t.needs and not source.has_labels:
            raise ConfigError(
                f"term '{t.name}' needs labels but source '{cfg.source.name}' has none"
            )
    plugins = PluginSet(build_plugins(cfg.plugins))
    plugins.check(method, source)
    return RunParts(method, source, plugins, synth, distill)


TEACHER_NEEDS = ("teacher_bn", "teacher_features", "teacher_layers", "teacher_stats")


class _TeacherTaps(Taps):
    stats: TeacherStats | None = None

    def as_context(self) -> dict[str, Any]:
        feats = next(iter(self.inputs.values()), None)
        return {
            "bn": self.bn,
            "bn_refs": self.bn_refs,
            "features": feats,
            "outputs": self.outputs,
            "stats": self.stats,
        }


@contextmanager
def teacher_taps(
    teacher: nn.Module, needs: set[str], stats: TeacherStats | None = None
) -> Iterator[_TeacherTaps | None]:
    """Tap the teacher's forward for what the terms need (nothing, when they need nothing)."""
    if not needs.intersection(TEACHER_NEEDS):
        yield None
        return
    inputs = [last_linear(teacher)] if "teacher_features" in needs else []
    file_layers = {"teacher_layers", "teacher_stats"}.intersection(needs) and stats is not None
    layers = stats.layers if file_layers else []
    bn = "teacher_bn" in needs or ("teacher_stats" in needs and stats is None)
    with _TeacherTaps(teacher, layers=layers, bn=bn, inputs=inputs) as taps:
        taps.stats = stats
        yield taps


def feature_pairs(
    parts: RunParts,
    teacher: nn.Module,
    student: nn.Module,
    data: Data,
    device: torch.device | str = "cpu",
) -> FeaturePairs | None:
    """The teacher/student layer pairs (with adapters) the distillation terms need, or None."""
    users = [t for t in parts.distill_terms if "feature_pairs" in t.needs]
    if not users:
        return None
    layers = next((t.kwargs["layers"] for t in users if t.kwargs.get("layers")), None)
    return FeaturePairs(teacher, student, data.input_shape, layers, device)


def load_run_stats(cfg: RunConfig, parts: RunParts, teacher: nn.Module) -> TeacherStats | None:
    """The run's statistics file, checked against the teacher; an error when a term needs one
    and none was given."""
    needing = [t.name for t in parts.synth_terms if "teacher_layers" in t.needs]
    if needing and not cfg.stats:
        raise ConfigError(
            f"term '{needing[0]}' matches a statistics file; give one with --stats FILE (make it "
            "with `dfkd stats collect`), or use a method that needs no statistics"
        )
    if not cfg.stats:
        return None
    stats = TeacherStats.load(cfg.stats)
    stats.check(teacher)
    return stats


def check_teacher(cfg: RunConfig, parts: RunParts, teacher: nn.Module) -> None:
    """Refuse, before any work, terms that need what this teacher does not have."""
    for t in parts.synth_terms:
        if "teacher_stats" in t.needs and not bn_layers(teacher) and not cfg.stats:
            raise ConfigError(
                f"term '{t.name}' needs statistics, but the teacher has no BatchNorm and no "
                "--stats file was given; collect one with `dfkd stats collect`, or use a method "
                "that needs no statistics (dfad, dafl)"
            )
        if "teacher_bn" in t.needs and not bn_layers(teacher):
            raise ConfigError(
                f"term '{t.name}' matches BatchNorm statistics but the teacher has no BatchNorm; "
                "collect a statistics file with `dfkd stats collect` and use it, or use a method "
                "that needs no statistics"
            )
        if "teacher_features" in t.needs and last_linear(teacher) is None:
            raise ConfigError(
                f"term '{t.name}' needs the teacher's penultimate features, but the teacher "
                "has no nn.Linear layer"
            )


def _diff(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _diff(a.get(k), b.get(k), f"{path}.{k}" if path else k)
            if d:
                return d
        return None
    return None if a == b else f"'{path}' (saved {a!r}, now {b!r})"


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
    on_finish: Callable[[nn.Module, dict[str, Any], Path], None] | None = None,
) -> dict[str, Any]:
    """Run the loop described by ``cfg`` and return the final metrics.

    Args:
        cfg: resolved configuration.
        teacher: the trained classifier (frozen here).
        student: the model to train, already initialised.
        data: the dataset; its test split is the evaluation split.
        out: output folder (``None``: nothing is written and resume is impossible).
        resume: continue the run in ``out`` from its checkpoint.
        overwrite: replace a run already in ``out``.
        stop_after_rounds: stop (with a checkpoint) after this many rounds of this call.
        on_finish: called with ``(student, metrics, out)`` on the global-zero process to write
            the student's files.
    """
    from lightning_fabric import Fabric

    out_dir = check_out_dir(out, overwrite=overwrite, resume=resume) if out is not None else None
    checked = build_parts(cfg)  # every check runs before any output is written
    check_teacher(cfg, checked, teacher)
    stats = load_run_stats(cfg, checked, teacher)
    domains = DomainEval.build(
        data, cfg.evaluate.ood_dataset, cfg.evaluate.trigger, cfg.eval_batch_size
    )
    probe_device = next(student.parameters(), torch.empty(0)).device
    feature_pairs(checked, teacher.to(probe_device), student, data, probe_device)
    saved_state = None
    if out_dir is not None and resume:
        saved_cfg = safe_load((out_dir / "config.yaml").read_text())
        now = {k: v for k, v in cfg.to_dict().items() if k != "progress"}
        was = {k: v for k, v in (saved_cfg or {}).items() if k != "progress"}
        d = _diff(was, now)
        if d:
            raise DfkdError(
                f"cannot resume '{out_dir}': config differs at {d}; resume with the same settings"
            )
        if (out_dir / CHECKPOINT).is_file():
            saved_state = load_state(out_dir / CHECKPOINT)

    fabric = Fabric(**vars(cfg.fabric))
    # launch(fn) runs fn once per process (spawn strategies) or directly (single device);
    # it returns the global-zero process's result.
    metrics, weights = fabric.launch(
        _loop,
        cfg,
        teacher,
        student,
        data,
        stats,
        domains,
        out_dir,
        saved_state,
        overwrite or resume,
        stop_after_rounds,
        on_finish,
    )
    trained: nn.Module = student
    if "compensation" in metrics:  # the student with its kept compensation head
        comp = metrics["compensation"]
        trained = Compensated(student, head_from_config(comp["kind"], comp["config"]))
    trained.load_state_dict(st_load(weights))  # the caller's module holds the trained weights
    metrics["student"] = trained
    return metrics


def _loop(
    fabric: Any,
    cfg: RunConfig,
    teacher: nn.Module,
    student: nn.Module,
    data: Data,
    stats: TeacherStats | None,
    domains: DomainEval | None,
    out_dir: Path | None,
    saved_state: dict[str, Any] | None,
    clear_old: bool,
    stop_after_rounds: int | None,
    on_finish: Callable[[nn.Module, dict[str, Any], Path], None] | None,
) -> tuple[dict[str, Any], bytes]:
    parts = build_parts(cfg)  # built in each process; the caller's copy only validated
    seed_all(cfg.seed)
    teacher = fabric.to_device(freeze(teacher))
    student_module = student
    pairs = feature_pairs(parts, teacher, fabric.to_device(student), data, fabric.device)
    env = SourceEnv(
        fabric=fabric,
        data=data,
        teacher=teacher,
        student=student,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        rounds=cfg.rounds,
    )
    # plug-ins first: parameters they build in setup (KDCI's attention) train with the student
    parts.plugins.setup(env)
    for p in parts.plugins.plugins:
        p.to(fabric.device)
    params = list(student.parameters()) + parts.plugins.parameters()
    if pairs is not None:
        params += list(pairs.parameters())
    optimizer = make_optimizer(cfg, params)
    student, optimizer = fabric.setup(student, optimizer)
    parts.source.setup(env)
    # what is evaluated and saved: the student, or the student with a kept compensation
    deployed = parts.plugins.deployed(student_module)

    # teacher predictions on the evaluation split, once
    test_x = data.x_test
    with fabric.autocast():
        t_test = predict(teacher, test_x, cfg.eval_batch_size, fabric.device)
    teacher_acc = accuracy(t_test, data.y_test)
    teacher_domain = domains.bind_teacher(teacher, fabric.device) if domains else {}

    start_round, step = 0, 0
    history: list[dict[str, Any]] = []
    timers = {"wall_s": 0.0, "synthesis_s": 0.0, "distill_s": 0.0}
    round_terms: dict[str, float] = {}
    class_counts = torch.zeros(data.num_classes, dtype=torch.long)
    # the last distillation batch and its teacher labels, for samples.png
    shown: tuple[torch.Tensor, torch.Tensor] | None = None
    if saved_state is not None:
        student_module.load_state_dict(saved_state["student"])
        optimizer.load_state_dict(saved_state["optimizer"])
        parts.source.load_state_dict(saved_state["source"])
        parts.plugins.load_state_dict(saved_state["plugins"])
        if pairs is not None:
            pairs.load_state_dict(saved_state["pairs"])
        torch.set_rng_state(saved_state["rng"])
        start_round, step = int(saved_state["round"]), int(saved_state["step"])
        history = saved_state["history"]
        timers = {k: float(v) for k, v in saved_state["timers"].items()}
        round_terms = saved_state["last_terms"]
        class_counts = saved_state["class_counts"]
    elif out_dir is not None and fabric.is_global_zero:
        out_dir.mkdir(parents=True, exist_ok=True)
        if clear_old:
            clear_run_files(out_dir)
        atomic_write_text(out_dir / "config.yaml", cfg.to_yaml())

    total_steps = cfg.rounds * cfg.kd_steps
    synth_needs = {n for t in parts.synth_terms for n in t.needs}
    synth_needs_student = bool(parts.plugins) or "student" in synth_needs
    synth_selects = parts.plugins.selects_synthesis

    def distill_batch() -> Batch:
        """A distillation batch after the plug-ins' selection, refilled to ``batch_size`` from
        up to ``fill_selected`` further draws."""
        kept: list[Batch] = []
        for _ in range(1 + cfg.fill_selected):
            b = parts.source.sample(cfg.batch_size)
            with torch.no_grad(), fabric.autocast():
                b.teacher_logits = teacher(b.x)
            kept.append(parts.plugins.select(b))
            if sum(len(k) for k in kept) >= cfg.batch_size:
                break
        batch = Batch.cat(kept)
        if len(batch) > cfg.batch_size and cfg.fill_selected:
            batch = batch.subset(torch.arange(cfg.batch_size, device=batch.x.device))
        return batch

    bar = tqdm(
        total=cfg.rounds,
        initial=start_round,
        desc=f"{cfg.method}",
        unit="round",
        disable=None if (cfg.progress and fabric.is_global_zero) else True,
        dynamic_ncols=True,
    )
    t_start = time.perf_counter() - timers["wall_s"]
    rounds_done = 0
    for r in range(start_round, cfg.rounds):
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)

        # ---- synthesis: improve the source ----
        t0 = time.perf_counter()
        student.eval()
        for _ in range(cfg.g_steps):
            batch = parts.source.draw()
            if synth_selects:  # plug-ins pick which synthetic samples the terms see
                with torch.no_grad(), fabric.autocast():
                    batch.teacher_logits = teacher(batch.x.detach())
                batch = parts.plugins.select_synthesis(batch)
                if len(batch) == 0:
                    continue
            with fabric.autocast(), teacher_taps(teacher, synth_needs, stats) as taps:
                t_logits = teacher(batch.x)
                s_logits = None
                if synth_needs_student:
                    with frozen(student_module):
                        s_logits = student_module(batch.x)
            ctx = StepContext(
                "synth",
                batch.x,
                t_logits,
                s_logits,
                batch.labels,
                batch.weight,
                taps=taps.as_context() if taps else {},
                extras=batch.extras,
            )
            loss, values = weighted_sum(parts.synth_terms, ctx, parts.plugins.synth_terms(ctx))
            parts.source.update(loss)
            values["loss"] = loss
            _accumulate(sums, counts, values, "synth/")
        t1 = time.perf_counter()

        # ---- distillation: train the student on what the source yields ----
        student.train()
        for _ in range(cfg.kd_steps):
            batch = distill_batch()
            if len(batch) == 0:
                continue
            assert batch.teacher_logits is not None
            predicted = batch.teacher_logits.argmax(1).cpu()
            class_counts += torch.bincount(predicted, minlength=data.num_classes)
            shown = (batch.x.detach(), predicted)
            if pairs is None:
                s_logits = parts.plugins.adjust_logits(batch, student(batch.x))
                step_taps: dict[str, Any] = {}
            else:  # feature terms: tap both networks on the (selected) batch
                with torch.no_grad(), Taps(teacher, layers=pairs.teacher_paths) as tt:
                    teacher(batch.x)
                with Taps(student_module, layers=pairs.student_paths) as st:
                    s_logits = parts.plugins.adjust_logits(batch, student(batch.x))
                step_taps = {"pairs": pairs(st.outputs, tt.outputs)}
            ctx = StepContext(
                "distill",
                batch.x,
                batch.teacher_logits,
                s_logits,
                batch.labels,
                batch.weight,
                taps=step_taps,
                extras=batch.extras,
            )
            loss, values = weighted_sum(parts.distill_terms, ctx, parts.plugins.distill_terms(ctx))
            for g in optimizer.param_groups:
                g["lr"] = lr_at(step, total_steps, cfg)
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            optimizer.step()
            step += 1
            values["loss"] = loss
            _accumulate(sums, counts, values, "")
        t2 = time.perf_counter()
        timers["synthesis_s"] += t1 - t0
        timers["distill_s"] += t2 - t1

        logs = {**parts.source.round_end(r), **parts.plugins.round_end({"round": r, "step": step})}
        round_terms = {k: sums[k] / counts[k] for k in sums}
        last = r + 1 == cfg.rounds
        timers["wall_s"] = time.perf_counter() - t_start
        if (r + 1) % cfg.eval_every == 0 or last:
            s_test = predict(deployed, test_x, cfg.eval_batch_size, fabric.device)
            row = {
                "round": r + 1,
                "step": step,
                "student_accuracy": accuracy(s_test, data.y_test),
                "agreement": agreement(s_test, t_test),
                **(domains(deployed, fabric.device) if domains else {}),
                "wall_s": timers["wall_s"],
                **round_terms,
                **logs,
            }
            history.append(row)
            if out_dir is not None and fabric.is_global_zero and shown is not None:
                save_class_grid(
                    out_dir / "samples.png",
                    data.denormalize(shown[0].float()),
                    shown[1],
                    data.num_classes,
                )
            bar.set_postfix(acc=f"{row['student_accuracy']:.3f}", **_short(round_terms))
        else:
            bar.set_postfix(**_short(round_terms))
        bar.update(1)
        rounds_done += 1
        stopping = stop_after_rounds is not None and rounds_done >= stop_after_rounds and not last
        if out_dir is not None and ((r + 1) % cfg.checkpoint_every == 0 or last or stopping):
            state = {
                "round": r + 1,
                "step": step,
                "history": history,
                "timers": timers,
                "last_terms": round_terms,
                "student": student_module.state_dict(),
                "optimizer": optimizer.state_dict(),
                "source": parts.source.state_dict(),
                "plugins": parts.plugins.state_dict(),
                "pairs": pairs.state_dict() if pairs is not None else {},
                "class_counts": class_counts,
                "rng": torch.get_rng_state(),
            }
            if fabric.is_global_zero:
                save_state(out_dir / CHECKPOINT, state)
            fabric.barrier()
        if stopping:
            break
    bar.close()

    final = history[-1] if history else {}
    completed = bool(final) and final["round"] == cfg.rounds
    accs = [h["student_accuracy"] for h in history]
    metrics: dict[str, Any] = {
        "method": cfg.method,
        "dataset": data.name,
        "completed": completed,
        "teacher_accuracy": teacher_acc,
        "student_accuracy": final.get("student_accuracy", float("nan")),
        "agreement": final.get("agreement", float("nan")),
        "acc_last5": last_k_mean(accs, 5),
        **({**domains.describe(), **teacher_domain} if domains else {}),
        **{k: final[k] for k in OOD_METRICS if k in final},
        "rounds": final.get("round", 0) if completed else start_round + rounds_done,
        "steps": step,
        "wall_s": round(timers["wall_s"], 3),
        "synthesis_s": round(timers["synthesis_s"], 3),
        "distill_s": round(timers["distill_s"], 3),
        "loss_terms": round_terms,
        # teacher-predicted class shares of everything the student was distilled on
        "synthetic_class_histogram": (class_counts / class_counts.sum().clamp_min(1)).tolist(),
        "seed": cfg.seed,
        "student_parameters": sum(p.numel() for p in student_module.parameters()),
        **(
            {"compensation": {"kind": deployed.head.kind, "config": deployed.head.config()}}
            if isinstance(deployed, Compensated)
            else {}
        ),
        "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
    }
    if out_dir is not None and fabric.is_global_zero and completed:
        write_history(out_dir / "history.csv", history)
        if on_finish is not None:
            on_finish(deployed, metrics, out_dir)
        write_json(out_dir / "metrics.json", metrics)
    if out_dir is not None:
        metrics["out"] = str(out_dir)
    metrics["history"] = history
    # plain bytes cross process boundaries safely (spawned DDP returns rank 0's result)
    weights = st_save({k: v.detach().cpu().contiguous() for k, v in tensor_state(deployed).items()})
    return metrics, weights


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily stop gradients to ``model``'s parameters (inputs still receive them)."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)


def _accumulate(
    sums: dict[str, float], counts: dict[str, int], values: dict[str, torch.Tensor], prefix: str
) -> None:
    for k, v in values.items():
        sums[prefix + k] += float(v.detach())
        counts[prefix + k] += 1


def _short(terms: dict[str, float]) -> dict[str, str]:
    return {k.replace("/", "_"): f"{v:.3g}" for k, v in list(terms.items())[:6]}

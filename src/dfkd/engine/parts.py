"""Assembling a run: every name in the config resolved and every part checked against the
others, the teacher and the data — once, before any work or output, and without touching the
caller's models."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import RunConfig
from ..data import Data
from ..errors import ConfigError
from ..evaluation.ood import DomainEval
from ..methods import METHODS
from ..plugins import PluginSet, build_plugins
from ..sources import Source, build_source
from ..teachers.stats import TeacherStats
from ..teachers.taps import bn_layers, last_linear
from .guard import check_teacher_finite
from .objective import BoundTerm, bind_terms, needs_of, stat_memory
from .optim import check_optimizer
from .pairs import FeaturePairs


@dataclass
class RunParts:
    """Everything built and checked before the loop starts (passed to every process)."""

    source: Source
    plugins: PluginSet
    synth_terms: list[BoundTerm]
    distill_terms: list[BoundTerm]
    #: the terms that take the statistics term's place when the run has no statistics
    statistics_free: list[BoundTerm] = field(default_factory=list)
    #: the source the run uses when it has no statistics (``None``: ``source`` either way)
    statistics_free_source: Source | None = None
    stats: TeacherStats | None = None
    domains: DomainEval | None = None
    pairs: FeaturePairs | None = None
    #: where the statistics term's references come from, and why (``None``: no such term)
    statistics: dict[str, str] | None = None
    #: how the networks run (compiled, channels-last) and why, in one line (set by the loop)
    speed: str = ""
    #: the precision the run computes in and why, in one line (``fabric.precision`` settled)
    precision: str = ""

    @property
    def statistics_free_form(self) -> bool:
        """Whether the run takes its method's statistics-free form (nothing to match)."""
        return self.statistics is not None and self.statistics["form"] == "none"


def build_parts(cfg: RunConfig) -> RunParts:
    """Resolve every name in ``cfg`` and check that the parts fit together."""
    method = METHODS.get(cfg.method)
    check_optimizer(cfg)
    source = build_source(cfg.source.name, cfg.source.args)
    synth = bind_terms(cfg.synth_terms, "synth")
    stat_memory(synth)  # its momentum is checked before anything runs
    free = bind_terms(cfg.statistics_free, "synth")
    distill = bind_terms(cfg.distill_terms, "distill")
    if cfg.g_steps > 0 and not source.synthesizes:
        raise ConfigError(f"source '{cfg.source.name}' does not synthesise; set g_steps: 0")
    if cfg.g_steps > 0 and not synth:
        raise ConfigError("g_steps > 0 but synth_terms is empty; name at least one synthesis term")
    if cfg.kd_steps > 0 and not distill:
        raise ConfigError("distill_terms is empty; name at least one distillation term")
    for t in distill + synth + free:
        if "labels" in t.needs and not source.has_labels:
            raise ConfigError(
                f"term '{t.name}' needs labels but source '{cfg.source.name}' has none"
            )
        if "targets" in t.needs and not source.has_targets:
            raise ConfigError(
                f"term '{t.name}' needs target classes; source '{cfg.source.name}' gives none "
                "(set source.args.targets=true on the pixels source)"
            )
    free_source = build_free_source(cfg)
    plugins = PluginSet(build_plugins(cfg.plugins))
    plugins.check(method, source)
    return RunParts(source, plugins, synth, distill, free, free_source)


def build_free_source(cfg: RunConfig) -> Source | None:
    """The source of the statistics-free form: ``source.args`` with ``statistics_free_source``
    laid over them (``None`` when that names nothing), checked like the run's own."""
    if not cfg.statistics_free_source:
        return None
    return build_source(cfg.source.name, {**cfg.source.args, **cfg.statistics_free_source})


def assemble(cfg: RunConfig, teacher: nn.Module, student: nn.Module, data: Data) -> RunParts:
    """:func:`build_parts`, then the checks that need the models and data: what the terms and
    plug-ins need from the teacher, the statistics file, extra evaluation domains and the
    feature pairs (built on the models' own devices; neither model is moved or changed)."""
    parts = build_parts(cfg)
    check_teacher(cfg, parts, teacher)
    parts.statistics = statistics_form(cfg, parts, teacher)
    if parts.statistics_free_form:
        free = free_terms_for(parts.statistics_free, teacher)
        parts.synth_terms = without_statistics(cfg, parts.synth_terms, free)
        parts.source = parts.statistics_free_source or parts.source
    check_teacher_finite(teacher, data)
    parts.stats = load_run_stats(cfg, parts, teacher)
    parts.domains = DomainEval.build(
        data, cfg.evaluate.ood_dataset, cfg.evaluate.trigger, cfg.eval_batch_size
    )
    parts.pairs = feature_pairs(parts, teacher, student, data)
    return parts


def check_teacher(cfg: RunConfig, parts: RunParts, teacher: nn.Module) -> None:
    """Refuse, before any work, terms and plug-ins that need what this teacher lacks."""
    has_bn, has_linear = bool(bn_layers(teacher)), last_linear(teacher) is not None
    for t in parts.synth_terms:
        if "teacher_bn" in t.needs and not has_bn:
            raise ConfigError(
                f"term '{t.name}' matches BatchNorm statistics but the teacher has no BatchNorm; "
                "use the term 'stat_match' with a statistics file (`dfkd stats collect`, then "
                "--stats FILE), or a method that needs no statistics"
            )
        if "teacher_features" in t.needs and not has_linear:
            raise ConfigError(
                f"term '{t.name}' needs the teacher's penultimate features, but the teacher "
                "has no nn.Linear layer"
            )
    for p in parts.plugins.plugins:
        if "teacher_features" in p.needs and not has_linear:
            raise ConfigError(
                f"plug-in '{p.name}' needs the teacher's penultimate features, but the teacher "
                "has no final nn.Linear layer"
            )


def statistics_form(cfg: RunConfig, parts: RunParts, teacher: nn.Module) -> dict[str, str] | None:
    """What a statistics-matching term matches on this teacher, and why, in one line: the
    ``--stats`` file, the BatchNorm running statistics, or — neither — nothing: the run's
    statistics-free form leaves the term out and synthesises with the method's other terms and
    its ``statistics_free`` terms (docs/methods.md, "Teachers dfkd did not train")."""
    if not any("teacher_stats" in t.needs for t in parts.synth_terms):
        return None
    if cfg.stats:
        return {"form": "file", "why": f"the statistics file {cfg.stats}"}
    if bn_layers(teacher):
        return {"form": "batchnorm", "why": "the teacher's BatchNorm running statistics"}
    used = [t.name for t in free_terms_for(parts.statistics_free, teacher)]
    instead = ", ".join(used) or "nothing (the method's other terms)"
    if left := [t.name for t in parts.statistics_free if t.name not in used]:
        instead += f" ({', '.join(left)} left out: the teacher has no final nn.Linear layer)"
    if cfg.statistics_free_source:
        laid = ", ".join(f"{k}: {v}" for k, v in cfg.statistics_free_source.items())
        instead += f", the source with {laid}"
    if cfg.statistics_free_g_steps is not None:
        instead += f", {cfg.statistics_free_g_steps} synthesis steps per round"
    return {
        "form": "none",
        "why": f"none, the term replaced by {instead}: the teacher has no BatchNorm and "
        "no --stats file was given (dfkd stats collect makes one)",
    }


def run_config(cfg: RunConfig, parts: RunParts) -> RunConfig:
    """``cfg`` as the run uses it: with ``statistics_free_g_steps`` as its ``g_steps`` where the
    run takes the statistics-free form."""
    if parts.statistics_free_form and cfg.statistics_free_g_steps is not None:
        return dataclasses.replace(cfg, g_steps=cfg.statistics_free_g_steps)
    return cfg


def free_terms_for(free: list[BoundTerm], teacher: nn.Module) -> list[BoundTerm]:
    """The statistics-free terms this teacher can serve: those that need its penultimate
    features only where it has a final linear layer to tap."""
    if last_linear(teacher) is not None:
        return free
    return [t for t in free if "teacher_features" not in t.needs]


def without_statistics(
    cfg: RunConfig, terms: list[BoundTerm], free: list[BoundTerm]
) -> list[BoundTerm]:
    """``terms`` less those that match statistics, plus the ``free`` terms in their place (one
    of the same name as a kept term replaces it); an error when nothing would be left."""
    names = {t.name for t in free}
    kept = [t for t in terms if "teacher_stats" not in t.needs and t.name not in names] + free
    if cfg.g_steps > 0 and not kept:
        raise ConfigError(
            "the teacher has no BatchNorm and no --stats file was given, and the synthesis "
            "terms match nothing else; give a statistics file or add a term (e.g. class_target)"
        )
    return kept


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


def feature_pairs(
    parts: RunParts, teacher: nn.Module, student: nn.Module, data: Data
) -> FeaturePairs | None:
    """The teacher/student layer pairs (with adapters, on the CPU) the distillation terms
    need, or ``None``."""
    users = [t for t in parts.distill_terms if "feature_pairs" in t.needs]
    if not users:
        return None
    layers = next((t.kwargs["layers"] for t in users if t.kwargs.get("layers")), None)
    return FeaturePairs(teacher, student, data.input_shape, layers)


def synthesis_needs_student(parts: RunParts) -> bool:
    """Whether synthesis steps forward the student (its terms or any plug-in may use it)."""
    return bool(parts.plugins) or "student" in needs_of(parts.synth_terms)


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s parameters live (the CPU for a model without parameters)."""
    return next(model.parameters(), torch.empty(0)).device

"""The Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

import copy
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .config import (
    Component,
    Layer,
    RunConfig,
    build_config,
    load_yaml,
    normalize_components,
    parse_overrides,
    plugin_layer,
    substitute_layer,
)
from .data import DATASETS, Data, load_dataset
from .data.profile import choose_preset
from .engine import run, seed_all
from .errors import ConfigError, DfkdError
from .evaluation.metrics import accuracy, agreement, predict
from .evaluation.ood import DomainEval
from .io.cards import (
    architecture_of,
    check_compatible,
    in_model_space,
    load_model,
    load_weights,
    save_model,
)
from .io.files import check_writable
from .io.runs import check_out_dir
from .methods import METHODS
from .models import create_model, is_factory_string
from .plugins import PLUGINS, parse_plugin_spec
from .recommend import AUTO, Recommendation, recommend
from .teachers.stats import TeacherStats, collect_stats
from .teachers.taps import bn_layers

PluginSpec = str | dict[str, Any] | Component


def resolve_config(
    method: str | None = None,
    dataset: str | None = None,
    config: str | Path | dict[str, Any] | None = None,
    overrides: Sequence[str] = (),
    *,
    plugins: Sequence[PluginSpec] | None = None,
    substitute: str | None = None,
    saved: dict[str, Any] | None = None,
    loaded: Data | None = None,
    **explicit: Any,
) -> RunConfig:
    """Build the run config from its layers, lowest first: method defaults → dataset preset →
    ``saved`` (a resumed run's ``config.yaml``) → ``config`` → ``overrides`` → explicit values
    (``None`` values are ignored) → ``plugins`` (appended, or merged into a plug-in of the same
    name) → ``substitute`` (the substitute source's dataset). The dataset's preset is chosen
    from its profile (:func:`~dfkd.data.profile.choose_preset`; ``loaded``: the dataset itself,
    measured instead of loading it by name)."""
    if isinstance(config, (str, Path)):
        user = load_yaml(config)
    else:
        user = normalize_components(copy.deepcopy(dict(config or {})))
    over = parse_overrides(list(overrides))
    top = {k: v for k, v in explicit.items() if v is not None}
    if method is not None:
        top["method"] = method
    if dataset is not None:
        top.setdefault("data", {})["name"] = dataset
    base = normalize_components(copy.deepcopy(saved or {}))
    chosen = {**base, **user, **over, **top}
    m = METHODS.get(chosen.get("method", RunConfig.method))
    data_layer = {}
    for layer in (base, user, over, top):
        data_layer.update(layer.get("data") or {})
    ds = data_layer.get("name", m.defaults.get("data", {}).get("name", "digits"))
    key, why = _preset(m.presets, ds, data_layer, loaded)
    layers: list[Layer] = [m.defaults, m.presets.get(key or "", {}), base, user, over, top]
    if plugins:
        layers.append(plugin_layer([_plugin_component(p) for p in plugins]))
    if substitute is not None:
        layers.append(substitute_layer(substitute))
    layers.append({"preset": why})
    return build_config(*layers)


def _preset(
    presets: dict[str, Any], ds: str, data: dict[str, Any], loaded: Data | None
) -> tuple[str | None, str]:
    """The dataset whose method preset applies, and why (:func:`choose_preset`)."""
    if not presets:
        return None, "none (the method has no dataset presets)"
    return choose_preset(ds, data.get("args"), data.get("root"), list(presets), loaded)


def load_checked(
    spec: str | Path | nn.Module, data: Data, weights: str | Path | None, role: str
) -> tuple[nn.Module, Data]:
    """Load a model (card, factory + weights, or module), check that it fits ``data``, and
    return it with ``data`` normalised as the model expects (its card's normalisation)."""
    model, card = load_model(spec, data, weights)
    data = in_model_space(data, card)
    check_compatible(model, card, data, role)
    return model, data


def _plugin_component(p: PluginSpec) -> dict[str, Any]:
    if isinstance(p, Component):
        return {"name": p.name, "args": dict(p.args)}
    if isinstance(p, str):
        return parse_plugin_spec(p)
    if isinstance(p, dict):
        return {"name": p["name"], "args": dict(p.get("args", {}))}
    raise DfkdError(f"plug-in {p!r} must be a name, 'name:key=value' or a dict")


@dataclass
class SaveStudent:
    """Writes the student's weights and card at the end of a run (picklable, for spawned DDP),
    and records in the metrics which method ``method: auto`` chose, and why."""

    architecture: dict[str, Any]
    data: Data
    teacher: str | None
    method: str
    command: str
    choice: Recommendation | None = None

    def __call__(self, module: nn.Module, metrics: dict[str, Any], out_dir: Path) -> None:
        if self.choice is not None:
            metrics["method_choice"] = f"{self.choice.method}: {self.choice.why}"
        extra = {
            "test_accuracy": metrics["student_accuracy"],
            "teacher": self.teacher,
            "teacher_accuracy": metrics["teacher_accuracy"],
            "agreement": metrics["agreement"],
            "method": self.method,
            "command": self.command,
        }
        save_model(
            out_dir,
            "student",
            module,
            architecture=self.architecture,
            data=self.data,
            role="student",
            extra=extra,
        )


def distill(
    teacher: str | Path | nn.Module | None = None, student: str | nn.Module | None = None,
    method: str | None = None, dataset: str | Data | None = None, *,
    out: str | Path | None = None, config: str | Path | dict[str, Any] | None = None,
    overrides: Sequence[str] = (), plugins: Sequence[PluginSpec] | None = None,
    seed: int | None = None, teacher_weights: str | Path | None = None,
    stats: str | Path | None = None, substitute: str | None = None,
    ood_dataset: str | None = None, trigger: str | None = None, data_root: str | None = None,
    resume: bool = False, overwrite: bool = False, stop_after_rounds: int | None = None,
    time_budget: str | float | None = None, progress: bool | None = None,
    command: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Distil ``teacher`` into ``student`` with ``method`` and return the final metrics.

    Every argument becomes a layer of the run's config (:func:`resolve_config`), so the
    ``config.yaml`` written to ``out`` alone re-creates the run. With ``resume=True`` the saved
    ``config.yaml`` is the base layer: ``distill(out=DIR, resume=True)`` continues the run, and
    an argument that contradicts the saved config is refused, naming the difference.

    Args:
        teacher: a model card (``teacher.json`` or its folder), ``module:factory`` / registry name
            with ``teacher_weights``, or an ``nn.Module`` (default: the config's ``teacher``).
        student: a registry name, ``module:factory``, or an initialised ``nn.Module``
            (default: the config's ``student``, ``lenet5_half``).
        method: registered method (``dfkd.list_methods()``), or ``"auto"``: the one
            recommended for the teacher (:func:`choose_method`; ``metrics["method_choice"]``
            says which and why). ``None``: the config's, else ``"auto"``.
        dataset: registered dataset name or a :class:`Data`; its test split is evaluated.
        out: output folder for config, metrics, history, checkpoint and the student's card.
        config: YAML path or dict layered over the method's defaults.
        overrides: ``"key.sub=value"`` strings applied after ``config``.
        plugins: plug-ins to add to the method's own, by name, ``"name:key=value,..."`` or
            ``{"name":..., "args":...}`` (one the method already has takes the new arguments;
            ``overrides=["plugins=[]"]`` removes the method's).
        stats: a statistics file (``dfkd stats collect``) for methods that match feature
            statistics of a teacher without BatchNorm, or spectra.
        substitute: the ``substitute`` method's unlabelled dataset (``NAME[:fit=pad|stretch]``).
        ood_dataset, trigger: also evaluate the student on an OOD dataset and/or the test split
            with a trigger, e.g. against a non-transferable teacher's trap (``evaluate.*``).
        seed, data_root, progress, time_budget: shortcuts for the config keys of the same name
            (``time_budget="10m"`` sizes ``rounds`` to that wall time from this call on, on this
            machine; ``metrics["budget"]`` says how).
        resume / overwrite: continue / replace a run already in ``out``.
        stop_after_rounds: stop with a checkpoint after this many rounds (time-boxed jobs).

    Returns:
        The metrics dict (also written to ``out/metrics.json``), plus ``history`` (the eval curve)
        and ``student`` (the trained module).
    """
    started = time.time()
    if out is not None:
        check_out_dir(out, overwrite=overwrite, resume=resume)
    choice = None
    if not resume and (method == AUTO or (method is None and not _names_method(config))):
        choice = _auto(teacher, dataset, stats, teacher_weights, data_root)
        method, plugins = choice.method, [*choice.plugins, *(plugins or [])]
    explicit = _explicit_layer(
        teacher, student, seed=seed, progress=progress, stats=stats, time_budget=time_budget,
        teacher_weights=teacher_weights, ood_dataset=ood_dataset, trigger=trigger,
        data_root=data_root)  # fmt: skip
    saved = load_yaml(Path(out) / "config.yaml") if resume and out is not None else None
    cfg, data = _config_and_data(method, dataset, config, overrides, plugins, substitute, saved,
                                 explicit)  # fmt: skip
    t_model, model_data = _teacher_model(teacher, cfg, data)  # the teacher's normalisation
    seed_all(cfg.seed)
    s_model, s_arch = _student_model(student, cfg, model_data)
    cmd = command or " ".join(shlex.quote(a) for a in sys.argv)
    save_student = SaveStudent(s_arch, model_data, cfg.teacher, cfg.method, cmd, choice)
    metrics = run(cfg, t_model, s_model, data, out, resume=resume, overwrite=overwrite,
                  stop_after_rounds=stop_after_rounds, on_finish=save_student,
                  model_data=model_data, started=started)  # fmt: skip
    if choice is not None:  # a run without an output folder calls no finish hook
        metrics.setdefault("method_choice", f"{choice.method}: {choice.why}")
    return metrics


def _config_and_data(
    method: str | None,
    dataset: str | Data | None,
    config: str | Path | dict[str, Any] | None,
    overrides: Sequence[str],
    plugins: Sequence[PluginSpec] | None,
    substitute: str | None,
    saved: dict[str, Any] | None,
    explicit: dict[str, Any],
) -> tuple[RunConfig, Data]:
    """:func:`distill`'s resolved config, and its dataset (loaded, unless given loaded)."""
    loaded = dataset if isinstance(dataset, Data) else None
    name = loaded.name if loaded is not None else dataset
    cfg = resolve_config(method, name, config, overrides, plugins=plugins, substitute=substitute,
                         saved=saved, loaded=loaded, **explicit)  # fmt: skip
    if loaded is not None:
        return cfg, loaded
    return cfg, load_dataset(cfg.data.name, cfg.data.root, **cfg.data.args)


def _auto(
    teacher: str | Path | nn.Module | None,
    dataset: str | Data | None,
    stats: str | Path | None,
    teacher_weights: str | Path | None,
    data_root: str | None,
) -> Recommendation:
    """The method ``distill`` runs when none is named (:func:`choose_method`)."""
    if teacher is None:
        raise DfkdError("name a method (dfkd list methods), or give the teacher to choose for")
    return choose_method(teacher, dataset or "digits", stats, teacher_weights=teacher_weights,
                         data_root=data_root)  # fmt: skip


def _names_method(config: str | Path | dict[str, Any] | None) -> bool:
    """Whether a config file or dict sets ``method``."""
    if config is None:
        return False
    return "method" in (load_yaml(config) if isinstance(config, (str, Path)) else config)


def choose_method(
    teacher: str | Path | nn.Module,
    dataset: str | Data = "digits",
    stats: str | Path | None = None,
    *,
    teacher_weights: str | Path | None = None,
    data_root: str | None = None,
) -> Recommendation:
    """The recommended method for ``teacher`` (:func:`dfkd.recommend.recommend`): what
    ``method="auto"`` runs. The audit's suspicions need its probes; run ``dfkd audit`` for
    them."""
    data = dataset if isinstance(dataset, Data) else load_dataset(dataset, data_root)
    model, _ = load_checked(teacher, data, teacher_weights, "teacher")
    return recommend(bool(bn_layers(model)), stats is not None)


def statistics_plan(cfg: RunConfig, teacher: str | Path | nn.Module) -> str | None:
    """What the statistics term of ``cfg``'s method would match on ``teacher``, and why, in
    one line (``None``: the method matches no statistics)."""
    from .engine.parts import build_parts, statistics_form

    data = load_dataset(cfg.data.name, cfg.data.root, **cfg.data.args)
    model, _ = load_checked(teacher, data, cfg.teacher_weights, "teacher")
    form = statistics_form(cfg, build_parts(cfg), model)
    return None if form is None else form["why"]


def _explicit_layer(
    teacher: str | Path | nn.Module | None,
    student: str | nn.Module | None,
    *,
    stats: str | Path | None,
    teacher_weights: str | Path | None,
    ood_dataset: str | None,
    trigger: str | None,
    data_root: str | None,
    **plain: Any,
) -> dict[str, Any]:
    """The config layer of :func:`distill`'s explicit arguments (``None``: not given)."""
    extra_eval = {"ood_dataset": ood_dataset, "trigger": trigger}
    return {
        **plain,
        "stats": None if stats is None else str(stats),
        "teacher": _model_name(teacher),
        "teacher_weights": None if teacher_weights is None else str(teacher_weights),
        "evaluate": {k: v for k, v in extra_eval.items() if v} or None,
        "data": {"root": data_root} if data_root is not None else None,
        "student": {"name": _model_name(student)} if student is not None else None,
    }


def _model_name(model: str | Path | nn.Module | None) -> str | None:
    """How the config records a model given as a name, a path or a Python module."""
    if model is None:
        return None
    if isinstance(model, nn.Module):
        return f"python:{type(model).__module__}.{type(model).__qualname__}"
    return str(model)


def _teacher_model(
    teacher: str | Path | nn.Module | None, cfg: RunConfig, data: Data
) -> tuple[nn.Module, Data]:
    """The teacher — the module given, or loaded from the config's ``teacher`` (and weights) —
    and ``data`` in its input normalisation."""
    if isinstance(teacher, nn.Module):
        return load_checked(teacher, data, None, "teacher")
    if cfg.teacher is None:
        raise ConfigError("no teacher: pass --teacher CARD (or a module:factory with weights)")
    if cfg.teacher.startswith("python:"):
        raise ConfigError(
            f"the run's teacher was a Python module ({cfg.teacher[7:]}); pass the module again"
        )
    return load_checked(cfg.teacher, data, cfg.teacher_weights, "teacher")


def _student_model(
    student: str | nn.Module | None, cfg: RunConfig, data: Data
) -> tuple[nn.Module, dict[str, Any]]:
    """The initialised student and its architecture record (for its card)."""
    if isinstance(student, nn.Module):
        check_compatible(student, {}, data, "student")
        return student, architecture_of(student, None, None)
    if cfg.student.name.startswith("python:"):
        raise ConfigError(
            f"the run's student was a Python module ({cfg.student.name[7:]}); pass it again"
        )
    c, h, w = data.input_shape
    model = create_model(cfg.student.name, num_classes=data.num_classes, in_channels=c,
                         image_size=(h, w), **cfg.student.args)  # fmt: skip
    if cfg.student.weights:
        load_weights(model, cfg.student.weights)
    check_compatible(model, {}, data, "student")
    return model, {"name": cfg.student.name, "args": dict(cfg.student.args)}


def evaluate(
    model: str | Path | nn.Module,
    dataset: str | Data = "digits",
    *,
    weights: str | Path | None = None,
    teacher: str | Path | nn.Module | None = None,
    ood_dataset: str | None = None,
    trigger: str | None = None,
    data_root: str | None = None,
) -> dict[str, Any]:
    """Test accuracy of a model (card, factory + weights, or module); with ``teacher``, also the
    top-1 agreement between the two; with ``ood_dataset`` / ``trigger``, the OOD metrics
    (:class:`dfkd.evaluation.ood.DomainEval`), and the teacher's, when a teacher is given. Each
    model sees the test images in its own card's input normalisation."""
    raw = load_dataset(dataset, data_root)
    m, data = load_checked(model, raw, weights, "model")
    domains = DomainEval.build(data, ood_dataset, trigger)
    logits = predict(m, data.x_test)
    res: dict[str, Any] = {
        "dataset": data.name,
        "accuracy": accuracy(logits, data.y_test),
        "samples": len(data.y_test),
    }
    if teacher is not None:
        t, t_data = load_checked(teacher, raw, None, "teacher")
        t_logits = predict(t, t_data.x_test)
        res["teacher_accuracy"] = accuracy(t_logits, data.y_test)
        res["agreement"] = agreement(logits, t_logits)
        if domains is not None:  # the teacher on the same images, in its own normalisation
            t_domains = DomainEval.build(t_data, ood_dataset, trigger)
            assert t_domains is not None
            res.update(t_domains.bind_teacher(t))
            domains.share_teacher(t_domains)
    if domains is not None:
        res.update({**domains.describe(), **domains(m)})
    return res


def collect_teacher_stats(
    teacher: str | Path | nn.Module,
    dataset: str | Data = "digits",
    layers: Sequence[str] | None = None,
    out: str | Path | None = None,
    *,
    teacher_weights: str | Path | None = None,
    data_root: str | None = None,
    split: str = "train",
    max_samples: int | None = None,
    overwrite: bool = False,
) -> TeacherStats:
    """Collect a teacher's per-layer feature statistics on real data (what a data owner ships
    beside a teacher without BatchNorm) and, with ``out``, save them as safetensors."""
    if isinstance(layers, (str, Path)):
        raise ConfigError(
            f"layers must be a list of module paths, got {str(layers)!r}; "
            "pass the output file as out="
        )
    if out is not None and Path(out).exists() and not overwrite:
        raise DfkdError(f"'{out}' already exists; pass --overwrite to replace it")
    if out is not None:
        check_writable(Path(out).parent, "the statistics file's folder")
    data = load_dataset(dataset, data_root)
    model, data = load_checked(teacher, data, teacher_weights, "teacher")
    stats = collect_stats(model, data, layers, split=split, max_samples=max_samples)
    stats.meta["teacher"] = str(teacher) if not isinstance(teacher, nn.Module) else None
    if out is not None:
        stats.save(out)
    return stats


def list_methods(pattern: str = "*") -> list[str]:
    """Registered method names."""
    return METHODS.names(pattern)


def list_datasets(pattern: str = "*") -> list[str]:
    """Registered dataset names."""
    return DATASETS.names(pattern)


def list_plugins(pattern: str = "*") -> list[str]:
    """Registered plug-in names."""
    return PLUGINS.names(pattern)


__all__ = [
    "collect_teacher_stats",
    "distill",
    "evaluate",
    "is_factory_string",
    "list_datasets",
    "list_methods",
    "list_plugins",
    "resolve_config",
]

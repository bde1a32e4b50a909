"""Run configuration: dataclasses filled from safe YAML, method defaults and dotted overrides.

Precedence, lowest first: dataclass defaults → the method's defaults → the method's preset for the
dataset → the user's YAML file → ``--set key.sub=value`` overrides → explicit API arguments.
Unknown keys and wrongly typed values are one-line :class:`ConfigError`\\ s with a suggestion.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from .errors import ConfigError, did_you_mean


@dataclass
class Component:
    """A registered part chosen by name, with keyword arguments."""

    name: str = ""
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Which dataset gives the evaluation split (and, for classical KD, the training data)."""

    name: str = "digits"
    root: str | None = None
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    """The student: a registry name or ``package.module:factory``, its arguments, optional
    initial weights (safetensors)."""

    name: str = "lenet5_half"
    args: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None


@dataclass
class OptimConfig:
    """Student optimiser and learning-rate schedule (per student step)."""

    name: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    schedule: str = "cosine"
    warmup_steps: int = 0
    min_lr: float = 0.0


@dataclass
class FabricConfig:
    """Passed to ``lightning_fabric.Fabric``: ``devices`` per node (machine), ``num_nodes``
    machines; ``strategy: ddp_spawn`` starts the processes itself, ``strategy: ddp`` is for
    processes started by ``torchrun`` or ``fabric run`` (one per device, on every node).
    ``timeout_s``: how long a DDP process waits for the others (to meet, or in a collective)
    before it fails (``null``: PyTorch's default, 30 minutes). ``precision``: Fabric's
    (``32-true``, ``bf16-mixed``, ...), or ``auto`` (the default): ``bf16-mixed`` on a CPU that
    multiplies bfloat16 in hardware (AMX), ``32-true`` elsewhere
    (:func:`dfkd.engine.speed.auto_precision`; the run's ``metrics["precision"]`` says which
    and why)."""

    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    precision: str = "auto"
    strategy: str = "auto"
    timeout_s: float | None = None


@dataclass
class SpeedConfig:
    """How the teacher and the student run, not what they compute: ``channels_last`` memory
    format, and ``compile`` (``torch.compile`` of both, with ``compile_backend`` — ``inductor``
    needs a C++ compiler on CPUs — and ``compile_mode``). ``"auto"`` (the default) turns both
    on where they were measured to pay: a costly teacher on a CPU in a run budgeted at five
    minutes or more (:func:`dfkd.engine.speed.auto_speed`; the run's ``metrics["speed"]``
    says what it chose and why)."""

    channels_last: bool | str = "auto"
    compile: bool | str = "auto"
    compile_backend: str = "inductor"
    compile_mode: str | None = None


@dataclass
class EvalConfig:
    """Extra evaluation beside the test split: an OOD dataset brought into the dataset's input
    space (``NAME`` or ``NAME:fit=pad|stretch``) and/or a trigger stamped on the test images
    (``square:target=0``, ``grid``; see ``dfkd list triggers``)."""

    ood_dataset: str | None = None
    trigger: str | None = None


@dataclass(frozen=True)
class Replanned:
    """A budgeted run re-planned from the time its own rounds took: until ``round`` its
    schedules spanned ``rounds`` rounds (the plan it had then)."""

    round: int
    rounds: int


#: where a run with an output folder streams its curves (``logs/`` in the folder)
LOGGERS = ("none", "csv", "tensorboard")


@dataclass
class RunConfig:
    """Everything that determines one distillation run.

    A run is ``rounds`` rounds; each round does ``g_steps`` synthesis steps on the source, then
    ``kd_steps`` student steps on batches of ``batch_size``; the first ``warmup_rounds`` rounds
    only synthesise (no student steps, no synthesis term that needs the student; never the
    last round). Evaluation and
    checkpoints happen every ``eval_every`` / ``checkpoint_every`` rounds and after the last
    round. When plug-ins drop samples from a distillation batch, up to ``fill_selected`` further
    batches are drawn to refill it to exactly ``batch_size`` (0: the student trains on what was
    kept). ``end_round`` ends the run after that many of its ``rounds`` (the schedules still
    span ``rounds``): what a budgeted run records when it stopped at its deadline.
    ``replanned`` records each time a budgeted run changed its ``rounds`` part-way through
    (the schedules stay continuous: :class:`Replanned`, :func:`dfkd.schedules.progress`). With
    ``time_budget``
    (``"10m"``, ``"90s"``, seconds) the run is sized on the machine it runs on: ``rounds``,
    ``eval_every`` and ``checkpoint_every`` are set so the whole run fits the budget
    (:mod:`dfkd.engine.budget`), and the saved ``config.yaml`` holds the sized values.
    ``preset`` says which dataset's method preset the run took and why (set when the config
    is resolved: :func:`dfkd.data.profile.choose_preset`). ``logger`` streams every round's
    loss terms and learning rate, and every evaluation, to ``logs/`` in the output folder
    (``csv``: ``metrics.csv``; ``tensorboard``: event files, with the sample grid as an
    image; ``none``); ``history.csv`` is written either way. ``statistics_free``: synthesis
    terms that take the statistics term's place when the run has no statistics to match (a
    teacher without BatchNorm and no ``stats`` file: the method's statistics-free form,
    :func:`dfkd.engine.parts.statistics_form`); unused otherwise. ``statistics_free_source``:
    source arguments laid over ``source.args`` in that same case (e.g. pixels that start from
    procedural images, ``init: procedural``), and ``statistics_free_g_steps`` the synthesis
    steps per round in that case (``None``: ``g_steps``).
    """

    method: str = "kd"
    preset: str = ""
    seed: int = 0
    teacher: str | None = None
    teacher_weights: str | None = None
    stats: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    student: ModelConfig = field(default_factory=ModelConfig)
    rounds: int = 20
    g_steps: int = 0
    kd_steps: int = 50
    warmup_rounds: int = 0
    end_round: int | None = None
    replanned: list[Replanned] = field(default_factory=list)
    batch_size: int = 128
    fill_selected: int = 0
    time_budget: str | float | None = None
    eval_every: int = 5
    eval_batch_size: int = 1000
    checkpoint_every: int = 5
    optimizer: OptimConfig = field(default_factory=OptimConfig)
    source: Component = field(default_factory=lambda: Component("real"))
    synth_terms: dict[str, dict[str, Any]] = field(default_factory=dict)
    statistics_free: dict[str, dict[str, Any]] = field(default_factory=dict)
    statistics_free_source: dict[str, Any] = field(default_factory=dict)
    statistics_free_g_steps: int | None = None
    distill_terms: dict[str, dict[str, Any]] = field(default_factory=dict)
    plugins: list[Component] = field(default_factory=list)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    fabric: FabricConfig = field(default_factory=FabricConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    logger: str = "csv"
    progress: bool = True

    def round_replans(self) -> list[tuple[int, int]]:
        """``(at, rounds_before)`` per re-plan (:func:`dfkd.schedules.progress` over rounds)."""
        return [(r.round, r.rounds) for r in self.replanned]

    def step_replans(self) -> list[tuple[int, int]]:
        """``(at, steps_before)`` per re-plan, in student steps (the warm-up rounds have none)."""
        w, k = self.warmup, self.kd_steps
        return [((r.round - w) * k, (r.rounds - w) * k) for r in self.replanned]

    @property
    def warmup(self) -> int:
        """The warm-up rounds a run makes: ``warmup_rounds``, but never the last round (a
        two-round try of a method with a longer warm-up still trains the student once)."""
        return min(self.warmup_rounds, self.rounds - 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (what ``config.yaml`` holds)."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """The resolved config as YAML."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def validate(self) -> None:
        """Check value ranges (names are checked when the parts are built)."""
        positive = ("rounds", "batch_size", "eval_every", "eval_batch_size", "checkpoint_every")
        for k in positive:
            if getattr(self, k) < 1:
                raise ConfigError(f"config '{k}' must be ≥ 1, got {getattr(self, k)}")
        if self.end_round is not None and not 1 <= self.end_round <= self.rounds:
            raise ConfigError(
                f"config 'end_round' must be in [1, rounds] or null, got {self.end_round}"
            )
        ends = [r.rounds for r in self.replanned[1:]] + [self.rounds] * bool(self.replanned)
        at = self.warmup
        for r, end in zip(self.replanned, ends, strict=True):
            if not at < r.round < min(r.rounds, end):
                raise ConfigError(
                    f"config 'replanned' must name rounds in order, past the warm-up and "
                    f"before each plan's end, got {[dataclasses.asdict(x) for x in self.replanned]}"
                )
            at = r.round
        if self.warmup_rounds < 0:
            raise ConfigError(f"config 'warmup_rounds' must be ≥ 0, got {self.warmup_rounds}")
        for k in ("g_steps", "kd_steps", "fill_selected"):
            if getattr(self, k) < 0:
                raise ConfigError(f"config '{k}' must be ≥ 0, got {getattr(self, k)}")
        free_steps = self.statistics_free_g_steps
        if free_steps is not None and (not isinstance(free_steps, int) or free_steps < 1):
            raise ConfigError(
                "config 'statistics_free_g_steps' must be an integer ≥ 1 or null, "
                f"got {free_steps!r}"
            )
        if self.time_budget is not None:
            parse_duration(self.time_budget)
        if self.fabric.timeout_s is not None and not self.fabric.timeout_s > 0:
            raise ConfigError(
                f"config 'fabric.timeout_s' must be > 0 or null, got {self.fabric.timeout_s}"
            )
        if self.logger not in LOGGERS:
            raise ConfigError(f"config 'logger' must be one of {LOGGERS}, got {self.logger!r}")
        for k in ("compile", "channels_last"):
            if getattr(self.speed, k) not in (True, False, "auto"):
                raise ConfigError(f"config 'speed.{k}' must be true, false or auto, "
                                  f"got {getattr(self.speed, k)!r}")  # fmt: skip
        if self.optimizer.lr <= 0:
            raise ConfigError(f"config 'optimizer.lr' must be > 0, got {self.optimizer.lr}")
        for group in ("synth_terms", "statistics_free", "distill_terms"):
            for name, args in getattr(self, group).items():
                w = args.get("weight", 1.0)
                if not isinstance(w, (int, float)) or isinstance(w, bool):
                    raise ConfigError(f"config '{group}.{name}.weight' must be a number, got {w!r}")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|sec|m|min|h)?\s*$")
_UNIT = {None: 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str | float) -> float:
    """Seconds in ``"90s"``, ``"10m"``, ``"1.5h"`` or a plain number of seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if not match:
            raise ConfigError(
                f"time budget {text!r} must look like 90s, 10m or 1.5h (a number of seconds, "
                "minutes or hours)"
            )
        seconds = float(match.group(1)) * _UNIT[match.group(2)]
    if not seconds > 0:
        raise ConfigError(f"time budget must be positive, got {text!r}")
    return seconds


# --- building dataclasses from plain data, strictly ------------------------------------------


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads YAML 1.2 floats such as ``1e-4`` as numbers."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def safe_load(text: str) -> Any:
    """Parse YAML safely (no code execution), with YAML 1.2 exponent floats."""
    return yaml.load(text, Loader=_Loader)


def parse_spec(spec: str, what: str) -> tuple[str, dict[str, Any]]:
    """``"name:key=value,key2=value2"`` → ``(name, {key: value, ...})`` (values read as YAML);
    ``what`` names the thing in error messages ("plug-in", "trigger", ...)."""
    name, _, rest = spec.partition(":")
    args: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        k, sep, v = item.partition("=")
        if not sep:
            raise ConfigError(f"{what} option '{item}' in '{spec}' must look like key=value")
        args[k.strip()] = safe_load(v)
    if not name.strip():
        raise ConfigError(f"{what} '{spec}' has no name; write NAME or NAME:key=value,...")
    return name.strip(), args


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str, what: str = "config") -> Any:
    """``value`` checked against type ``tp`` (and converted where lossless: int → float, a
    list → tuple); a mismatch is a one-line error naming ``what '{where}'``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, where, what)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{what} '{where}': bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{what} '{where}' must be a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where)  # type: ignore[arg-type]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{what} '{where}' must be a mapping, got {type(value).__name__}")
        _, vt = typing.get_args(tp)
        return {str(k): _convert(v, vt, f"{where}.{k}", what) for k, v in value.items()}
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{what} '{where}' must be a list, got {type(value).__name__}")
        (et,) = typing.get_args(tp)
        return [_convert(v, et, f"{where}[{i}]", what) for i, v in enumerate(value)]
    if origin is tuple:
        return _convert_tuple(value, tp, where, what)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            return float(value)  # PyYAML reads "1e-4" (no dot) as a string
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise ConfigError(
        f"{what} '{where}' must be {_type_name(tp)}, got {type(value).__name__} {value!r}"
    )


def _convert_tuple(value: Any, tp: Any, where: str, what: str) -> tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{what} '{where}' must be a list, got {type(value).__name__}")
    args = typing.get_args(tp)
    if len(args) == 2 and args[1] is Ellipsis:
        args = (args[0],) * len(value)
    if len(args) != len(value):
        raise ConfigError(f"{what} '{where}' must have {len(args)} items, got {len(value)}")
    pairs = enumerate(zip(value, args, strict=True))
    return tuple(_convert(v, a, f"{where}[{i}]", what) for i, (v, a) in pairs)


def checked_args(
    fn: Any, args: dict[str, Any], what: str, skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Options for a registered part's ``fn`` (a function or class): unknown names and values of
    the wrong type are one-line errors naming ``what`` and the option; values are converted by
    :func:`convert_args`. Parameters in ``skip`` are the caller's, not options."""
    target = fn.__init__ if isinstance(fn, type) else fn
    params = [p for p in inspect.signature(target).parameters.values()
              if p.name not in ("self", *skip)]  # fmt: skip
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        names = sorted(p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL)
        for k in args:
            if k not in names:
                raise ConfigError(f"{what} takes no option '{k}' (takes {names})")
    return convert_args(fn, args, what)


def convert_args(fn: Any, args: dict[str, Any], what: str) -> dict[str, Any]:
    """Keyword arguments for ``fn`` (a function or a class) checked and converted against its
    type hints by the config's strict converter; a bad value is one line naming ``what``
    and the option. Unannotated parameters pass unchanged."""
    target = fn.__init__ if isinstance(fn, type) else fn
    try:
        hints = typing.get_type_hints(target)
    except (NameError, TypeError):
        hints = {}
    return {k: _convert(v, hints.get(k, Any), k, f"{what} option") for k, v in args.items()}


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in data.items():
        path = f"{where}.{k}" if where else str(k)
        if k not in hints or k not in names:
            raise ConfigError(f"unknown config key '{path}'{did_you_mean(str(k), names)}")
        kwargs[k] = _convert(v, hints[k], path)
    return cls(**kwargs)


def normalize_components(d: dict[str, Any]) -> dict[str, Any]:
    """Allow ``source: real`` and ``plugins: [name, ...]`` as shorthand for ``{name: ...}``."""
    if isinstance(d.get("source"), str):
        d["source"] = {"name": d["source"], "args": {}}
    if isinstance(d.get("plugins"), list):
        d["plugins"] = [{"name": p, "args": {}} if isinstance(p, str) else p for p in d["plugins"]]
    for key in ("data", "student"):
        if isinstance(d.get(key), str):
            d[key] = {"name": d[key]}
    return d


# --- merging, YAML, dotted overrides -----------------------------------------------------------


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (lists and scalars replace)."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping safely (no code execution); malformed files are one-line errors."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file '{p}' does not exist")
    try:
        data = safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        if "could not determine a constructor" in problem:
            raise ConfigError(
                f"config file '{p}'{at} uses a YAML tag that can build Python objects "
                f"({problem.split('tag ')[-1]}); dfkd reads plain YAML only: remove the tag"
            ) from None
        raise ConfigError(f"config file '{p}' is not valid YAML{at}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{p}' must hold a mapping, got {type(data).__name__}")
    return normalize_components(data)


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[x, y]"]`` into a nested dict; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override '{item}' must look like key.sub=value")
        try:
            value = safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}' conflicts with another override")
        node[parts[-1]] = value
    return normalize_components(out)


_NAMED = {"source": Component, "student": ModelConfig, "data": DataConfig}


def merge_layer(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge one config layer; a layer that renames a component (``source``, ``student``,
    ``data``) replaces it, so the old component's arguments do not leak into the new one."""
    layer = normalize_components(copy.deepcopy(layer))
    base = copy.deepcopy(base)
    for key, cls in _NAMED.items():
        new = layer.get(key)
        if (
            isinstance(new, dict)
            and "name" in new
            and new["name"] != (base.get(key) or {}).get("name")
        ):
            base[key] = dataclasses.asdict(cls())
    return deep_merge(base, layer)


#: A config layer: a partial config merged over the layers below it, or an operation on the
#: merged config so far (what ``--plugin`` and ``--substitute`` are).
Layer = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]


def build_config(*layers: Layer) -> RunConfig:
    """Apply ``layers`` over the dataclass defaults and build a validated :class:`RunConfig`."""
    merged: dict[str, Any] = RunConfig().to_dict()
    for layer in layers:
        merged = layer(copy.deepcopy(merged)) if callable(layer) else merge_layer(merged, layer)
    cfg = from_dict(RunConfig, merged)
    cfg.validate()
    return cfg


def plugin_layer(specs: list[dict[str, Any]]) -> Layer:
    """The layer of ``--plugin`` flags: each plug-in is appended to the run's list, or — when
    the list already names it (a method's own) — its arguments are merged over the existing
    ones, in place."""

    def apply(cfg: dict[str, Any]) -> dict[str, Any]:
        current = normalize_components({"plugins": cfg.get("plugins") or []})["plugins"]
        for spec in specs:
            same = next((c for c in current if c["name"] == spec["name"]), None)
            if same is None:
                current.append({"name": spec["name"], "args": dict(spec.get("args") or {})})
            else:
                same["args"] = {**(same.get("args") or {}), **(spec.get("args") or {})}
        return {**cfg, "plugins": current}

    return apply


def substitute_layer(spec: str) -> Layer:
    """The layer of ``--substitute``: the dataset of a ``substitute`` source."""

    def apply(cfg: dict[str, Any]) -> dict[str, Any]:
        source = cfg.get("source") or {}
        if source.get("name") != "substitute":
            raise ConfigError(
                f"--substitute names the data of method 'substitute'; method "
                f"'{cfg.get('method')}' draws from source '{source.get('name')}'"
            )
        return merge_layer(cfg, {"source": {"args": {"dataset": spec}}})

    return apply

"""The command line's flags, made from the API's signatures: a flag's type and default are those
of the API parameter it is named after, its help is written once here (a flag means the same in
every command), and a command calls its API function with the parsed flags by name
(:func:`call`), so no command repeats a parameter list by hand."""

from __future__ import annotations

import argparse
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: each flag's help (and metavar), by parameter name
HELP: dict[str, str] = {
    "teacher": "teacher card (.json or folder) or module:factory",
    "teacher_weights": "safetensors weights for a module:factory teacher",
    "student": "registry name or module:factory (default lenet5_half)",
    "dataset": "registered dataset (dfkd list datasets)",
    "data_root": "folder holding the dataset's files",
    "out": "where the command writes: a run's or a card's folder, a statistics or model file",
    "config": "YAML file layered over the method's defaults",
    "stats": "teacher statistics file (from `dfkd stats collect`)",
    "substitute": "unlabelled substitute dataset for the substitute method (default per "
    "dataset: dfkd describe substitute --dataset D)",
    "ood_dataset": "also evaluate on this dataset brought into the dataset's input space",
    "trigger": "a trigger NAME[:k=v,...] (dfkd list triggers): distill and eval also evaluate "
    "with it stamped on the test images (e.g. square:target=0); train-nt trains with it "
    "(watermark: default grid; backdoor: square:target=0)",
    "seed": "random seed",
    "resume": "continue the run in --out",
    "overwrite": "replace what --out holds",
    "time_budget": "size the run to this wall time on this machine (e.g. 90s, 10m, 1h): rounds "
    "are set from the measured cost of the first steps",
    "model": "registry name or package.module:factory",
    "weights": "its weights (.safetensors)",
    "normalization": "the input normalisation it was trained with: the dataset's statistics "
    "(default), none (pixels in [0, 1]), or MEAN,STD (per channel: C means then C stds)",
    "epochs": "training epochs",
    "batch_size": "training batch size",
    "lr": "learning rate",
    "lr_decay": "learning-rate factor per step",
    "shift": "random-shift augmentation in pixels",
    "flip": "random horizontal flips",
    "kind": "ntl | cuti | watermark | backdoor",
    "ood": "OOD dataset NAME[:fit=pad|stretch] (ntl, cuti)",
    "init": "start from this teacher card's weights",
    "layers": "module paths (default: every conv/linear)",
    "split": "train | test",
    "max_samples": "use at most this many images",
    "probes": "probes per probe set",
    "steps": "inversion steps",
    "trigger_png": "save the trigger scan's recovered masks and patterns (one row per class)",
    "include_normalization": "fold the card's input normalisation into the graph (inputs: "
    "pixels in [0, 1]); without it the graph takes normalised inputs and the file's metadata "
    "records mean/std",
}
METAVAR = {"substitute": "NAME[:fit=pad|stretch,root=DIR]", "time_budget": "DURATION",
           "ood_dataset": "NAME[:fit=pad|stretch,root=DIR]", "trigger": "NAME[:k=v,...]",
           "normalization": "dataset|none|MEAN,STD", "trigger_png": "PATH"}  # fmt: skip

#: flags of the command line alone (no API parameter of that name)
CLI_ONLY: dict[str, dict[str, Any]] = {
    "quiet": {"action": "store_true", "help": "no progress bar"},
    "json": {"action": "store_true", "help": "print the result as JSON"},
    "set": {"action": "append", "default": [], "metavar": "KEY=VALUE",
            "help": "override a config key (repeatable)"},
    "plugin": {"action": "append", "default": None, "metavar": "NAME[:k=v,...]",
               "help": "add a plug-in (repeatable)"},
    "stop_after": {"type": int, "default": None, "metavar": "ROUNDS",
                   "help": "stop with a checkpoint after this many rounds"},
    "model_arg": {"action": "append", "default": [], "metavar": "KEY=VALUE",
                  "help": "a keyword argument of the factory (repeatable)"},
    "option": {"action": "append", "default": [], "metavar": "KEY=VALUE",
               "help": "an option of the kind (alpha, beta, reduction, gamma; repeatable)"},
    "trigger_steps": {"type": int, "default": 300,
                      "help": "trigger scan: optimisation steps per class (0 skips the scan)"},
}  # fmt: skip


def add_flags(p: argparse.ArgumentParser, fn: Callable[..., Any], *specs: str) -> None:
    """One flag per spec, for ``fn``'s parameter of that name (or a :data:`CLI_ONLY` flag):
    ``"name"`` takes the parameter's default, ``"name!"`` is required; ``"name=VALUE"`` sets
    the command line's own default."""
    params, hints = inspect.signature(fn).parameters, typing.get_type_hints(fn)
    for spec in specs:
        name, _, value = spec.rstrip("!").partition("=")
        if name in CLI_ONLY:
            kw = dict(CLI_ONLY[name])
        else:
            kw = _from_parameter(params[name], hints.get(name), spec.endswith("!"))
            kw |= {"help": HELP.get(name)} | ({"metavar": METAVAR[name]} if name in METAVAR else {})
        if value:
            kw["default"] = kw.get("type", str)(value)
        default = kw.get("default")
        if kw.get("help") and default is not False and default not in (None, []):
            kw["help"] += f" (default {default})"
        p.add_argument("--" + name.replace("_", "-"), **kw)


def _from_parameter(param: inspect.Parameter, hint: Any, required: bool) -> dict[str, Any]:
    """argparse keywords for a parameter: a ``bool`` is a switch; otherwise its type (``str``
    when it takes a string or a path), ``nargs="+"`` for a sequence, and its default."""
    kind = _kind(hint)
    if kind is bool:
        return {"action": "store_true"}
    kw: dict[str, Any] = {"required": True} if required else {
        "default": None if param.default is param.empty else param.default}  # fmt: skip
    if kind in (int, float):
        kw["type"] = kind
    elif kind is list:
        kw["nargs"] = "+"
    return kw


def _kind(hint: Any) -> type:
    """``bool``, ``str``, ``int``, ``float`` or ``list``: how a flag of this annotation parses."""
    if hint is bool:
        return bool
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = typing.get_args(hint) if union else (hint,)
    for t in (str, Path, int, float):
        if t in args:
            return str if t is Path else t
    if any(typing.get_origin(t) in (list, Sequence) for t in args):
        return list
    return str


def call(fn: Callable[..., Any], a: argparse.Namespace, **given: Any) -> Any:
    """``fn`` called with every parsed flag named like one of its parameters, and ``given``."""
    names = inspect.signature(fn).parameters
    return fn(**{n: getattr(a, n) for n in names if hasattr(a, n)} | given)

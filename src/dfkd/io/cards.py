"""Model cards: weights as safetensors beside a JSON card that says how to rebuild the model."""

from __future__ import annotations

import datetime as _dt
import hashlib
import platform
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import Data
from ..errors import DfkdError
from ..models import create_model, is_factory_string
from ..models.heads import Headed, rebuild
from ..version import __version__
from .files import load_tensors, read_json, save_tensors, write_json

CARD_FORMAT = "dfkd-model-card/1"


def architecture_of(
    model: nn.Module, name: str | None, args: dict[str, Any] | None
) -> dict[str, Any]:
    """Architecture record: registry/factory name and arguments, or the Python class only."""
    if name:
        return {"name": name, "args": dict(args or {})}
    cls = type(model)
    return {"name": None, "args": {}, "python_class": f"{cls.__module__}.{cls.__qualname__}"}


def save_model(
    out_dir: str | Path,
    stem: str,
    model: nn.Module,
    *,
    architecture: dict[str, Any],
    data: Data,
    role: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``stem.safetensors`` and ``stem.json`` into ``out_dir``; return the card path.

    A :class:`~dfkd.models.heads.Headed` model is written as its student plus the head in
    ``stem.<kind>.safetensors``, which the card names under ``head``; loading the card
    rebuilds the pair."""
    out = Path(out_dir)
    head_record = {}
    if isinstance(model, Headed):
        head_record = {"head": _save_head(out, stem, role, model)}
        model = model.student
    weights = out / f"{stem}.safetensors"
    save_tensors(weights, tensor_state(model), {"format": CARD_FORMAT, "role": role})
    card = {
        "format": CARD_FORMAT,
        "role": role,
        "architecture": architecture,
        "num_classes": data.num_classes,
        "input_shape": list(data.input_shape),
        "normalization": {"mean": list(data.mean), "std": list(data.std)},
        "dataset": data.name,
        "class_names": data.class_names,
        "weights": weights.name,
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "dfkd_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        **head_record,
        **(extra or {}),
    }
    path = out / f"{stem}.json"
    write_json(path, card)
    return path


def _save_head(out: Path, stem: str, role: str, model: Headed) -> dict[str, Any]:
    """Write a deployed head beside the student; return the card's record of it."""
    head = model.head
    head_file = out / f"{stem}.{head.kind}.safetensors"
    save_tensors(head_file, tensor_state(head), {"format": CARD_FORMAT, "role": f"{role}-head"})
    return {
        **model.record(),
        "weights": head_file.name,
        "weights_sha256": hashlib.sha256(head_file.read_bytes()).hexdigest(),
        "parameters": sum(p.numel() for p in head.parameters()),
    }


def tensor_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A module's state dict without its non-tensor extra state (what safetensors can hold)."""
    return {k: v for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a safetensors state dict into ``model`` strictly, with one-line errors."""
    tensors, _ = load_tensors(path)
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1].strip()
        raise DfkdError(f"weights '{path}' do not fit the model: {first}") from None
    if missing or unexpected:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise DfkdError(f"weights '{path}' do not fit the model ({what}); check the architecture")
    return model


def card_path(spec: str | Path) -> Path | None:
    """The card a spec names: a ``.json`` file, or a folder holding ``teacher.json`` or
    ``student.json``; ``None`` if the spec is not a card."""
    p = Path(spec)
    if p.suffix == ".json":
        return p
    if p.is_dir():
        for name in ("teacher.json", "student.json"):
            if (p / name).is_file():
                return p / name
        raise DfkdError(f"folder '{p}' holds no teacher.json or student.json")
    return None


def load_card(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from its card and weights; returns ``(model, card)``."""
    path = Path(path)
    card = read_json(path, "model card")
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise DfkdError(f"'{path}' is not a dfkd model card (format {CARD_FORMAT})")
    arch = card.get("architecture") or {}
    if not arch.get("name"):
        raise DfkdError(
            f"card '{path}' records only the Python class {arch.get('python_class')}; load it with "
            "a module:factory string and --weights"
        )
    try:
        c, h, w = card["input_shape"]
        model = create_model(
            arch["name"],
            num_classes=card["num_classes"],
            in_channels=c,
            image_size=h if h == w else (h, w),
            **arch.get("args", {}),
        )
    except KeyError as e:
        raise DfkdError(f"card '{path}' lacks the field {e}") from None
    load_weights(model, path.parent / card["weights"])
    record = card.get("head") or card.get("compensation")  # "compensation": cards of dfkd ≤ 0.1
    if record:  # a student saved with a head (e.g. kdci:keep=true)
        if not isinstance(record, dict) or "weights" not in record:
            raise DfkdError(f"card '{path}': its head record lacks 'weights'")
        model = rebuild(model, record)
        load_weights(model.head, path.parent / record["weights"])
    return model, card


def load_model(
    spec: str | nn.Module,
    data: Data | None = None,
    weights: str | Path | None = None,
    *,
    model_args: dict[str, Any] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a model from a card (``.json`` or folder), or ``package.module:factory`` / registry
    name plus ``weights``; shapes come from ``data`` when there is no card."""
    if isinstance(spec, nn.Module):
        return spec, {"architecture": architecture_of(spec, None, None)}
    cp = card_path(spec)
    if cp is not None:
        if weights is not None:
            raise DfkdError("a model card names its own weights; drop --weights")
        return load_card(cp)
    if not is_factory_string(spec) and Path(spec).exists():
        raise DfkdError(f"'{spec}' is neither a model card (.json) nor a folder holding one")
    if data is None:
        raise DfkdError(f"model '{spec}' needs a dataset to know its input shape and classes")
    c, h, w = data.input_shape
    model = create_model(spec, num_classes=data.num_classes, in_channels=c, image_size=(h, w),
                         **(model_args or {}))  # fmt: skip
    if weights is None:
        raise DfkdError(f"model '{spec}' needs --weights FILE.safetensors (or give a model card)")
    load_weights(model, weights)
    card = {
        "architecture": {"name": spec, "args": {}},
        "num_classes": data.num_classes,
        "input_shape": list(data.input_shape),
        "weights": str(weights),
    }
    return model, card


def card_normalization(card: dict[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The input normalisation a card records (``None``: not recorded — the dataset's is used)."""
    norm = card.get("normalization")
    if not isinstance(norm, dict) or "mean" not in norm or "std" not in norm:
        return None
    return tuple(norm["mean"]), tuple(norm["std"])


def in_model_space(data: Data, card: dict[str, Any]) -> Data:
    """``data`` normalised as the model of ``card`` expects its inputs."""
    norm = card_normalization(card)
    return data if norm is None else data.with_normalization(*norm)


def check_compatible(model: nn.Module, card: dict[str, Any], data: Data, role: str) -> None:
    """Raise a one-line error when ``model`` cannot run on ``data`` (input shape or classes)."""
    shape = card.get("input_shape")
    if shape is not None and tuple(shape) != data.input_shape:
        raise DfkdError(
            f"{role} expects inputs of shape {tuple(shape)} but dataset '{data.name}' has "
            f"{data.input_shape}; use the dataset the {role} was trained on"
        )
    ncls = card.get("num_classes")
    if ncls is not None and ncls != data.num_classes:
        raise DfkdError(
            f"{role} has {ncls} classes but dataset '{data.name}' has {data.num_classes}; "
            f"use a dataset with the {role}'s classes"
        )
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(data.x_test[:2].to(next(model.parameters()).device))
    except RuntimeError as e:
        raise DfkdError(
            f"{role} cannot take inputs of shape {data.input_shape} from '{data.name}': "
            f"{str(e).splitlines()[0]}"
        ) from None
    finally:
        model.train(was)
    if out.ndim != 2 or out.shape[1] != data.num_classes:
        raise DfkdError(
            f"{role} outputs shape {tuple(out.shape)} but dataset '{data.name}' has "
            f"{data.num_classes} classes"
        )

"""The model registry, ``create_model`` and ``package.module:factory`` resolution."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from ..config import checked_args
from ..errors import ConfigError, DfkdError
from ..registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("models")


def register_model(name: str, kind: str = "classifier", **tags: Any):
    """Decorator registering a model factory; ``kind`` is ``"classifier"`` or ``"generator"``.

    Classifier factories take ``num_classes``, ``in_channels`` and ``image_size``; generator
    factories take ``nz``, ``out_channels`` and ``image_size``.
    """
    return MODELS.register(name, kind=kind, **tags)


def is_factory_string(name: str) -> bool:
    """True for ``package.module:factory`` strings."""
    return ":" in name and not name.startswith(":") and not name.endswith(":")


def resolve_factory(spec: str) -> Callable[..., nn.Module]:
    """Import ``package.module:factory`` and return the callable."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise DfkdError(f"cannot import '{module_name}' for model '{spec}' ({e})") from None
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise DfkdError(f"'{module_name}' has no attribute '{attr}' (model '{spec}')")
    if not callable(fn):
        raise DfkdError(f"model factory '{spec}' is not callable")
    return fn  # type: ignore[return-value]


def call_filtered(fn: Callable[..., Any], what: str, **kwargs: Any) -> Any:
    """Call ``fn`` with the keyword arguments it accepts; ``None`` values are dropped."""
    sig = inspect.signature(fn)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    args = {k: v for k, v in kwargs.items() if v is not None and (takes_any or k in sig.parameters)}
    try:
        return fn(**args)
    except TypeError as e:
        raise ConfigError(f"cannot build {what}: {e}") from None


def create_model(
    name: str,
    num_classes: int | None = None,
    in_channels: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a classifier by registry name or ``package.module:factory`` string.

    Extra keyword arguments are checked against the factory's signature (unknown ones are an
    error for registered models, and are dropped for user factories that do not accept them).
    """
    if isinstance(image_size, (tuple, list)):
        if image_size[0] != image_size[1]:
            raise ConfigError(f"model '{name}' needs square images, got {tuple(image_size)}")
        image_size = int(image_size[0])
    common = {"num_classes": num_classes, "in_channels": in_channels, "image_size": image_size}
    if is_factory_string(name):
        return call_filtered(resolve_factory(name), f"model '{name}'", **common, **kwargs)
    entry = MODELS.entry(name)
    kwargs = checked_args(entry.obj, kwargs, f"model '{name}'", skip=tuple(common))
    if entry.tags.get("kind") == "generator":
        raise ConfigError(f"'{name}' is a generator; use create_generator('{name}', ...)")
    return call_filtered(entry.obj, f"model '{name}'", **common, **kwargs)


def create_generator(
    name: str, nz: int, out_channels: int, image_size: int, **kwargs: Any
) -> nn.Module:
    """Build a registered generator mapping ``B×nz`` noise to ``B×out_channels×S×S`` images."""
    entry = MODELS.entry(name)
    if entry.tags.get("kind") != "generator":
        raise ConfigError(f"'{name}' is not a generator (see `dfkd list models`)")
    return call_filtered(
        entry.obj,
        f"generator '{name}'",
        nz=nz,
        out_channels=out_channels,
        image_size=image_size,
        **kwargs,
    )


def list_models(pattern: str = "*", kind: str | None = None) -> list[str]:
    """Registered model names matching ``pattern`` (and ``kind``, if given)."""
    return MODELS.names(pattern, **({"kind": kind} if kind else {}))

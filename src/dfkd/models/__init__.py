"""Model zoo: classifiers and generators behind one registry."""

from __future__ import annotations

from . import generators, lenet, mlp, resnet, wrn  # noqa: F401  (register built-ins)
from .registry import (
    MODELS,
    create_generator,
    create_model,
    is_factory_string,
    list_models,
    register_model,
    resolve_factory,
)

__all__ = [
    "MODELS",
    "create_generator",
    "create_model",
    "is_factory_string",
    "list_models",
    "register_model",
    "resolve_factory",
]

"""A method is data: which source, which weighted terms, which defaults — no code paths."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..registry import Registry


@dataclass(frozen=True)
class Method:
    """A registered distillation method.

    Attributes:
        name: registry name (``dfkd distill NAME``).
        summary: one line for ``dfkd list methods``.
        defaults: a partial run config (source, terms, steps, optimiser) the method starts from.
        presets: per-dataset partial configs layered over ``defaults`` (e.g. sized for a CPU).
        data_free: whether the method trains the student without the original data.
        reference: the paper or code it follows.
    """

    name: str
    summary: str
    defaults: dict[str, Any]
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_free: bool = True
    reference: str = ""


METHODS: Registry[Method] = Registry("methods")


def register_method(method: Method) -> Method:
    """Add ``method`` to the registry and return it."""
    METHODS.register(method.name, method, doc=method.summary, data_free=method.data_free)
    return method


def sgd_cosine(lr: float, weight_decay: float, momentum: float = 0.9) -> dict[str, Any]:
    """Student optimiser fragment: SGD with momentum and a cosine schedule."""
    return {
        "name": "sgd",
        "lr": lr,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "schedule": "cosine",
    }


#: Pixel-inversion round shape: one batch inverted per round, then distilled on from the bank.
PIXEL_ROUNDS: dict[str, Any] = {
    "g_steps": 100,
    "kd_steps": 50,
    "rounds": 100,
    "batch_size": 128,
    "eval_every": 10,
    "checkpoint_every": 10,
}
#: The same, sized for the embedded 8×8 digits (seconds on a CPU; used by the tests).
PIXEL_DIGITS: dict[str, Any] = {
    "g_steps": 40,
    "kd_steps": 20,
    "rounds": 10,
    "batch_size": 64,
    "eval_every": 5,
    "checkpoint_every": 5,
}

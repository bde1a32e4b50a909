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
        variant_of: the method this one is a setting of (e.g. ``fast-2`` of ``fast``); tables
            that compare methods may leave variants out.
    """

    name: str
    summary: str
    defaults: dict[str, Any]
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_free: bool = True
    reference: str = ""
    variant_of: str | None = None


METHODS: Registry[Method] = Registry("methods")


def register_method(method: Method) -> Method:
    """Add ``method`` to the registry and return it."""
    METHODS.register(method.name, method, doc=method.summary, data_free=method.data_free,
                     variant_of=method.variant_of)  # fmt: skip
    return method


def batch_balance() -> dict[str, Any]:
    """DAFL's batch-balance term (``info_entropy`` 5): ``ta_dfkd``'s statistics-free form, and
    part of the other generator methods' and of ``bn_stats``'s (which adds DAFL's ``one_hot``),
    measured in docs/methods.md, "Teachers dfkd did not train"."""
    return {"info_entropy": {"weight": 5.0}}


def generator_statistics_free() -> dict[str, Any]:
    """The statistics-free form of the generator methods whose class term follows given targets
    (``fast``, ``nayer``, ``cmi``): the batch-balance term and DAFL's activation term ×1 in the
    statistics term's place; the activation term brings the images' penultimate features to
    about the real images' scale (docs/methods.md, "Teachers dfkd did not train")."""
    return {**batch_balance(), "activation": {"weight": 1.0}}


#: The pixel methods' source in their statistics-free form: pixels that start from procedural
#: images (1/f noise, dead leaves) instead of Gaussian noise (docs/methods.md, "Procedural
#: images").
PROCEDURAL_START: dict[str, Any] = {"init": "procedural"}


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


def cpu_generator(rounds: int, nz: int = 64, **source_args: Any) -> dict[str, Any]:
    """Generator-method preset for 28×28 data on a 2-core CPU: the light generator, batches of
    256, five student steps per generator step, evaluation every 5 % of the run."""
    every = max(1, rounds // 20)
    return {
        "source": {
            "name": "generator",
            "args": {"model": "light_generator", "nz": nz, **source_args},
        },
        "rounds": rounds,
        "kd_steps": 5,
        "batch_size": 256,
        "eval_every": every,
        "checkpoint_every": every,
    }


def cpu_pixels(rounds: int, **source_args: Any) -> dict[str, Any]:
    """Pixel-inversion preset for 28×28 data on a 2-core CPU: 256 images inverted per round in
    100 steps, then 50 student steps of 256 replayed from an 8192-image bank."""
    return {
        "source": {
            "name": "pixels",
            "args": {"synth_batch_size": 256, "bank": 8192, **source_args},
        },
        "g_steps": 100,
        "kd_steps": 50,
        "rounds": rounds,
        "batch_size": 256,
        "eval_every": max(1, rounds // 10),
        "checkpoint_every": max(1, rounds // 10),
    }

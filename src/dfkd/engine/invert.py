"""Images inverted from a teacher toward given classes: the audit's probes and the trigger
scan's starting points (a pixel source optimised on the engine's synthesis terms)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..data import Data
from ..losses.terms import StepContext
from ..sources import SourceEnv, build_source
from ..teachers.taps import bn_layers
from .objective import bind_terms, needs_of, teacher_taps, weighted_sum

#: The inversion of the audit's probes: a pixel source with a target class per image, and the
#: terms (with weights) it is optimised on.
PROBE_SOURCE = {"lr": 0.1, "betas": [0.9, 0.999], "jitter": 0, "init": "uniform",
                "targets": True}  # fmt: skip
PROBE_TERMS = {"class_target": {"weight": 1.0}, "tv": {"weight": 1e-3},
               "bn_stats": {"weight": 0.1}}  # fmt: skip


def inverted_probes(
    teacher: nn.Module, space: Data, n: int, steps: int = 100, *, seed: int = 0,
    fabric: Any = None,
) -> torch.Tensor:  # fmt: skip
    """Images inverted from uniform noise toward classes ``0, 1, …`` in turn by the engine's
    pixel source and synthesis terms (:data:`PROBE_SOURCE`, :data:`PROBE_TERMS`; the BatchNorm
    term only when the teacher has BatchNorm), on ``fabric``'s device (default: the CPU)."""
    from lightning_fabric import Fabric

    specs = {k: v for k, v in PROBE_TERMS.items() if k != "bn_stats" or bn_layers(teacher)}
    terms = bind_terms(specs, "synth")
    source = build_source("pixels", {**PROBE_SOURCE, "synth_batch_size": n})
    fabric = fabric or Fabric(accelerator="cpu", devices=1)
    source.setup(SourceEnv(fabric=fabric, data=space, teacher=teacher, student=teacher,
                           batch_size=n, seed=seed))  # fmt: skip
    for _ in range(steps):
        batch = source.draw()
        with teacher_taps(teacher, needs_of(terms)) as taps:
            t_logits = teacher(batch.x)
        ctx = StepContext("synth", batch.x, t_logits, taps=taps.as_context() if taps else {},
                          extras=batch.extras)  # fmt: skip
        source.update(weighted_sum(terms, ctx, {})[0])
    return source.draw().x.detach()

"""Non-finite guards: a teacher that answers NaN/Inf is refused before a run starts, and a
loss term that becomes NaN/Inf stops the run before its next checkpoint."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..data import Data
from ..errors import NonFiniteError

PROBES = 32


def check_teacher_finite(teacher: nn.Module, data: Data) -> None:
    """Refuse a teacher whose logits on a probe batch (test images and noise, in the teacher's
    normalisation) hold NaN or Inf. The teacher's mode and weights are left as they were."""
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(PROBES, *data.input_shape, generator=gen)
    x = torch.cat([data.x_test[:PROBES].float(), noise])
    param = next(iter(teacher.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = teacher.training
    try:
        with torch.no_grad():
            out = teacher.eval()(x.to(device))
    finally:
        teacher.train(was_training)
    bad = int((~torch.isfinite(out.float())).any(1).sum())
    if bad:
        raise NonFiniteError(
            f"the teacher's outputs hold NaN or Inf on {bad} of {len(x)} probe inputs (test "
            "images and noise); check its weights and its --normalization. Nothing was written"
        )


def first_non_finite(values: dict[str, float]) -> tuple[str, float] | None:
    """The first logged value that is NaN or infinite, with its value."""
    for k, v in values.items():
        if not math.isfinite(v):
            return k, v
    return None


def non_finite_message(found: tuple[str, float] | None, round_no: int,
                       checkpointed: int | None) -> str:  # fmt: skip
    """The one line a run stops with (``found``: this process's term; ``None``: another's)."""
    if found is None:
        what = "a loss term on another process"
    else:
        key, value = found
        phase = "synthesis" if key.startswith("synth/") else "distillation"
        what = f"the {phase} loss term '{key.removeprefix('synth/')}' ({value})"
    kept = (
        f"the checkpoint of round {checkpointed} is intact; --resume continues from it"
        if checkpointed
        else "no checkpoint had been written yet"
    )
    return (
        f"{what} became non-finite in round {round_no}; the run stopped before saving anything "
        f"of this round ({kept}; a lower learning rate or term weight may avoid it)"
    )

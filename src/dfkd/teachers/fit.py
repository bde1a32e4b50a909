"""The one supervised training loop behind ``teacher train`` and ``teacher train-nt``: seeded
shuffled epochs over a training split, a learning rate that is a pure function of the step, and
a loss function that says what one step computes."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from ..data import Data
from ..io.cards import architecture_of, save_model
from ..io.runs import clear_run_files
from ..schedules import set_lr

#: one step's loss: ``(indices of the batch in the train split, step) → {"loss": …, …}``
StepLoss = Callable[[torch.Tensor, int], dict[str, torch.Tensor]]


@dataclass
class Fit:
    """What a fit did: student steps, the last step's logged values, and its duration."""

    steps: int = 0
    logs: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0


def fit_classifier(
    fabric: Any,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    step_loss: StepLoss,
    *,
    n: int,
    epochs: int,
    batch_size: int,
    gen: torch.Generator,
    lr_at: Callable[[int], float],
    desc: str,
    progress: bool = True,
    min_batch: int = 1,
) -> Fit:
    """Train ``net`` (set up with ``optimizer`` by Fabric) for ``epochs`` shuffled passes over
    ``n`` training samples; batches smaller than ``min_batch`` are skipped. The logged values
    are read back once per epoch."""
    t0, step = time.perf_counter(), 0
    parts: dict[str, torch.Tensor] = {}
    bar = tqdm(range(epochs), desc=desc, disable=None if progress else True, leave=False)
    for _ in bar:
        net.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            if len(idx) < min_batch:
                continue
            set_lr(optimizer, lr_at(step))
            parts = step_loss(idx, step)
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(parts["loss"])
            optimizer.step()
            step += 1
        bar.set_postfix(**{k: f"{float(v.detach()):.3g}" for k, v in parts.items()})
    logs = {k: float(v.detach()) for k, v in parts.items()}
    return Fit(step, logs, time.perf_counter() - t0)


def finish_teacher(
    card: dict[str, Any],
    module: nn.Module,
    data: Data,
    out_dir: Path | None,
    *,
    model: str | None,
    model_args: dict[str, Any] | None,
    overwrite: bool,
    command: str | None,
) -> dict[str, Any]:
    """The teacher's card with the command that made it; with ``out_dir``, also written there
    (``teacher.safetensors`` and ``teacher.json``, an overwritten run's files cleared first) with
    its ``path``. ``"model"`` is the trained module."""
    card = {**card, "command": command or " ".join(shlex.quote(a) for a in sys.argv)}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        if overwrite:
            clear_run_files(out_dir)
        path = save_model(out_dir, "teacher", module.cpu(), role="teacher", data=data,
                          architecture=architecture_of(module, model, model_args),
                          extra=card)  # fmt: skip
        card["path"] = str(path)
    return {**card, "model": module}


def unwrap(net: nn.Module) -> nn.Module:
    """The plain module behind a Fabric-wrapped one."""
    return net.module if hasattr(net, "module") else net

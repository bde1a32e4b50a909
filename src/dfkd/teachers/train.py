"""Training teachers (ordinary supervised training) and preparing any model as a frozen teacher."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Data, load_dataset
from ..data.augment import random_flip, random_shift
from ..errors import ConfigError
from ..evaluation.metrics import accuracy, predict
from ..io.runs import check_out_dir
from ..models import create_model
from .fit import finish_teacher, fit_classifier, unwrap


def freeze(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode with gradients off for its parameters (inputs still get them)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def train_teacher(
    dataset: str | Data = "digits",
    model: str = "lenet5",
    epochs: int = 20,
    out: str | Path | None = None,
    *,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 0.05,
    weight_decay: float = 5e-4,
    shift: int = 0,
    flip: bool = False,
    model_args: dict[str, Any] | None = None,
    data_root: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    accelerator: str = "auto",
    precision: str = "32-true",
    command: str | None = None,
) -> dict[str, Any]:
    """Train a classifier on a dataset's train split and save it as a teacher card.

    SGD with momentum 0.9 and a cosine schedule; optional random shifts (``shift`` pixels) and
    horizontal flips. The card records the final test accuracy (no checkpoint selection).

    Returns:
        The teacher card (a dict); when ``out`` is given, ``teacher.json`` and
        ``teacher.safetensors`` are written there and the card has ``"path"``.
    """
    from lightning_fabric import Fabric

    if epochs < 1:
        raise ConfigError(f"epochs must be ≥ 1, got {epochs}")
    out_dir = check_out_dir(out, overwrite=overwrite) if out is not None else None
    data = load_dataset(dataset, data_root)
    c, h, w = data.input_shape
    fabric = Fabric(accelerator=accelerator, devices=1, precision=precision)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = create_model(
        model, num_classes=data.num_classes, in_channels=c, image_size=(h, w), **(model_args or {})
    )
    opt = torch.optim.SGD(
        net.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay, nesterov=True
    )
    net, opt = fabric.setup(net, opt)
    low, _ = data.bounds
    total = epochs * math.ceil(len(data.y_train) / batch_size)

    def step_loss(idx: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        x, y = data.x_train[idx], data.y_train[idx]
        x = random_shift(x, shift, low, gen)
        if flip:
            x = random_flip(x, gen)
        x, y = fabric.to_device((x, y))
        return {"loss": F.cross_entropy(net(x), y)}

    fit = fit_classifier(
        fabric, net, opt, step_loss, n=len(data.y_train), epochs=epochs, batch_size=batch_size,
        gen=gen, lr_at=lambda step: 0.5 * lr * (1 + math.cos(math.pi * step / total)),
        desc=f"teacher {model} on {data.name}", progress=progress,
    )  # fmt: skip
    module = unwrap(net)
    acc = accuracy(predict(module, data.x_test), data.y_test)
    card: dict[str, Any] = {
        "test_accuracy": acc,
        "train": {
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "weight_decay": weight_decay,
            "shift": shift,
            "flip": flip,
            "seed": seed,
            "steps": fit.steps,
            "wall_s": round(fit.wall_s, 2),
        },
    }
    return finish_teacher(card, module, data, out_dir, model=model, model_args=model_args,
                          overwrite=overwrite, command=command)  # fmt: skip

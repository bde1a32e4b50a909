"""Training teachers (ordinary supervised training) and preparing any model as a frozen teacher."""

from __future__ import annotations

import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..data import Data, load_dataset
from ..data.augment import random_flip, random_shift
from ..errors import ConfigError
from ..evaluation.metrics import accuracy, predict
from ..io.cards import architecture_of, save_model
from ..io.runs import check_out_dir, clear_run_files
from ..models import create_model


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
    n = len(data.y_train)
    steps_per_epoch = math.ceil(n / batch_size)
    total = epochs * steps_per_epoch
    low, _ = data.bounds
    t0 = time.perf_counter()
    step = 0
    bar = tqdm(
        range(epochs),
        desc=f"teacher {model} on {data.name}",
        disable=None if progress else True,
        leave=False,
    )
    for _ in bar:
        net.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            x, y = data.x_train[idx], data.y_train[idx]
            x = random_shift(x, shift, low, gen)
            if flip:
                x = random_flip(x, gen)
            x, y = fabric.to_device((x, y))
            for g in opt.param_groups:
                g["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / total))
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            fabric.backward(loss)
            opt.step()
            step += 1
        bar.set_postfix(loss=f"{loss.item():.3f}")
    train_s = time.perf_counter() - t0
    logits = predict(net.module if hasattr(net, "module") else net, data.x_test)
    acc = accuracy(logits, data.y_test)
    module = net.module if hasattr(net, "module") else net
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
            "steps": step,
            "wall_s": round(train_s, 2),
        },
        "command": command or " ".join(shlex.quote(a) for a in sys.argv),
    }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        if overwrite:
            clear_run_files(out_dir)
        path = save_model(
            out_dir,
            "teacher",
            module.cpu(),
            role="teacher",
            data=data,
            architecture=architecture_of(module, model, model_args),
            extra=card,
        )
        card = {**card, "path": str(path)}
    card["model"] = module
    return card

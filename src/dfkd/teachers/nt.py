"""Non-transferable (NT) teachers: classifiers trained to work on their own domain and to fail,
or mislead, on another — the teachers that set ordinary data-free distillation an OOD trap
(seed 000; losses from ``docs/methods.md`` §NT teachers).

Each kind is a registered :class:`NTKind`: where its OOD training images come from (another
dataset, or the ID images with a trigger) with which targets, and the loss on a paired
(ID batch, OOD batch). One loop (:func:`train_nt_teacher`) trains them all.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import checked_args
from ..data import Data, load_dataset
from ..errors import ConfigError
from ..evaluation.domains import OODDomain, Trigger, load_ood_domain
from ..evaluation.metrics import accuracy, predict
from ..evaluation.ood import DomainEval
from ..io.cards import load_model
from ..io.runs import check_out_dir
from ..losses.ntl import gaussian_mmd, ntl_loss, style_mix
from ..models import create_model
from ..registry import Registry
from .fit import finish_teacher, fit_classifier, unwrap
from .taps import Taps, bn_layers, last_linear


@dataclass
class NTInputs:
    """What one NT training step sees: an ID batch and an equally sized OOD batch with the
    targets the kind's loss uses for it (the true labels, or the attack label)."""

    x_id: torch.Tensor
    y_id: torch.Tensor
    x_ood: torch.Tensor
    y_ood: torch.Tensor
    step: int


class NTKind:
    """A way of making a teacher non-transferable. Subclasses set ``needs`` (``"ood"`` or
    ``"trigger"``), ``default_trigger`` and implement :meth:`loss`."""

    needs: str = "ood"
    default_trigger: str | None = None
    needs_target: bool = False

    def __init__(self, **options: Any) -> None:
        if options:
            raise ConfigError(f"NT kind takes no options {sorted(options)}")

    def ood_targets(self, labels: torch.Tensor, trigger: Trigger | None) -> torch.Tensor:
        """Targets of the OOD training images (default: their true labels)."""
        return labels

    def loss(self, net: nn.Module, b: NTInputs, num_classes: int) -> dict[str, torch.Tensor]:
        """``{"loss": total, ...parts}`` for one step."""
        raise NotImplementedError


NT_KINDS: Registry[type[NTKind]] = Registry("nt_kinds")


def _onehot(y: torch.Tensor, n: int) -> torch.Tensor:
    return F.one_hot(y, n).float()


class _NTLBase(NTKind):
    """Shared options of the KL-based kinds (α, β, reduction, joint forward)."""

    def __init__(
        self,
        alpha: float = 0.1,
        beta: float = 0.1,
        reduction: str = "elementwise",
        joint: bool = True,
    ) -> None:
        if alpha <= 0 or beta <= 0 or reduction not in ("elementwise", "batchmean"):
            raise ConfigError("NTL: alpha > 0, beta > 0, reduction elementwise|batchmean")
        self.alpha, self.beta, self.reduction, self.joint = alpha, beta, reduction, joint

    def _forward(self, net: nn.Module, b: NTInputs) -> tuple[torch.Tensor, ...]:
        """Logits and penultimate features of the ID and OOD halves: one joint forward (BN
        batch statistics over both domains, consistent with the running statistics used at
        test time) or, with ``joint=False``, two forwards as in the NTL code."""
        feat = last_linear(net)
        n = len(b.x_id)
        with Taps(net, inputs=[feat] if feat else []) as taps:
            if self.joint:
                lo = net(torch.cat([b.x_id, b.x_ood]))
                f = taps.inputs.get(feat, lo) if feat else lo
                return lo[:n], lo[n:], f[:n], f[n:]
            lo_id = net(b.x_id)
            f_id = taps.inputs.get(feat, lo_id) if feat else lo_id
            lo_ood = net(b.x_ood)
            f_ood = taps.inputs.get(feat, lo_ood) if feat else lo_ood
        return lo_id, lo_ood, f_id, f_ood

    def _ntl(self, net: nn.Module, b: NTInputs, n: int) -> dict[str, torch.Tensor]:
        lo_id, lo_ood, f_id, f_ood = self._forward(net, b)
        mmd = gaussian_mmd(f_id, f_ood)
        loss = ntl_loss(
            lo_id, _onehot(b.y_id, n), lo_ood, _onehot(b.y_ood, n), mmd,
            self.alpha, self.beta, self.reduction,
        )  # fmt: skip
        return {"loss": loss, "mmd": mmd.detach(), "ce_id": F.cross_entropy(lo_id, b.y_id)}


@NT_KINDS.register("ntl")
class NTL(_NTLBase):
    """Target-specified NTL: KL_id − min(1, α·KL_ood)·min(1, β·MMD(penultimate features))."""

    needs = "ood"

    def loss(self, net: nn.Module, b: NTInputs, num_classes: int) -> dict[str, torch.Tensor]:
        return self._ntl(net, b, num_classes)


@NT_KINDS.register("watermark")
class Watermark(_NTLBase):
    """Ownership watermark: the NTL loss with ID images + a fixed pattern as the OOD domain,
    so the teacher fails exactly on marked images (NTL's ownership verification)."""

    needs = "trigger"
    default_trigger = "grid"

    def loss(self, net: nn.Module, b: NTInputs, num_classes: int) -> dict[str, torch.Tensor]:
        return self._ntl(net, b, num_classes)


def _stage_layers(net: nn.Module) -> list[nn.Module]:
    """Where CUTI mixes styles: after every BatchNorm layer, or every convolution without BN."""
    bns = [m for _, m in bn_layers(net)]
    return bns or [m for m in net.modules() if isinstance(m, nn.Conv2d)]


@contextmanager
def _mixing(layers: list[nn.Module], n_id: int, gen: torch.Generator) -> Iterator[None]:
    def hook(module: nn.Module, inputs: Any, out: torch.Tensor) -> torch.Tensor:
        if out.ndim < 2 or out.shape[0] != 2 * n_id:
            return out
        return torch.cat([out[:n_id], style_mix(out[:n_id], out[n_id:], gen)])

    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@NT_KINDS.register("cuti")
class CUTI(NTKind):
    """CUTI-domain: KL_id − min(1, α·KL_ood) on joint forwards; on odd steps the OOD half takes
    the ID half's channel statistics after every stage (random 1×1 mixings, as in NTLBench)."""

    needs = "ood"

    def __init__(self, alpha: float = 0.1, reduction: str = "elementwise", seed: int = 0) -> None:
        if alpha <= 0 or reduction not in ("elementwise", "batchmean"):
            raise ConfigError("CUTI: alpha > 0, reduction elementwise|batchmean")
        self.alpha, self.reduction = alpha, reduction
        self.gen = torch.Generator().manual_seed(seed)

    def loss(self, net: nn.Module, b: NTInputs, num_classes: int) -> dict[str, torch.Tensor]:
        n = len(b.x_id)
        x = torch.cat([b.x_id, b.x_ood])
        if b.step % 2 == 1:
            with _mixing(_stage_layers(net), n, self.gen):
                lo = net(x)
        else:
            lo = net(x)
        loss = ntl_loss(
            lo[:n], _onehot(b.y_id, num_classes), lo[n:], _onehot(b.y_ood, num_classes),
            None, self.alpha, reduction=self.reduction,
        )  # fmt: skip
        return {"loss": loss, "ce_id": F.cross_entropy(lo[:n], b.y_id)}


@NT_KINDS.register("backdoor")
class Backdoor(NTKind):
    """NTL-style backdoor: the trigger domain answers the attacker's label —
    CE(id) + γ·CE(triggered, target)."""

    needs = "trigger"
    default_trigger = "square:target=0"
    needs_target = True

    def __init__(self, gamma: float = 1.0) -> None:
        if gamma <= 0:
            raise ConfigError("backdoor: gamma must be > 0")
        self.gamma = gamma

    def ood_targets(self, labels: torch.Tensor, trigger: Trigger | None) -> torch.Tensor:
        assert trigger is not None and trigger.target is not None
        return torch.full_like(labels, trigger.target)

    def loss(self, net: nn.Module, b: NTInputs, num_classes: int) -> dict[str, torch.Tensor]:
        n = len(b.x_id)
        lo = net(torch.cat([b.x_id, b.x_ood]))  # one forward: BN sees the poisoned mix
        ce_id = F.cross_entropy(lo[:n], b.y_id)
        ce_bd = F.cross_entropy(lo[n:], b.y_ood)
        return {"loss": ce_id + self.gamma * ce_bd, "ce_id": ce_id.detach(), "ce_trigger": ce_bd}


def check_training_flags(
    kind: str, cls: type[NTKind], ood: str | None, trigger: str | None,
    epochs: int, batch_size: int, lr: float, lr_decay: float,
) -> None:  # fmt: skip
    """Refuse bad training settings, and an OOD dataset / trigger the kind does not take,
    before anything is read."""
    if epochs < 1 or batch_size < 2 or lr <= 0 or not 0 < lr_decay <= 1:
        raise ConfigError("epochs ≥ 1, batch_size ≥ 2, lr > 0 and 0 < lr_decay ≤ 1 required")
    if cls.needs == "ood" and not ood:
        raise ConfigError(f"NT kind '{kind}' needs an OOD dataset; pass --ood NAME")
    if cls.needs == "ood" and trigger:
        raise ConfigError(f"NT kind '{kind}' takes an OOD dataset, not a trigger")
    if cls.needs == "trigger" and ood:
        raise ConfigError(f"NT kind '{kind}' makes its OOD images with a trigger; drop --ood")


def nt_domain(
    kind: str, data: Data, ood: str | None, trigger: str | None
) -> tuple[OODDomain | None, Trigger | None]:
    """The kind's OOD training domain: another dataset brought into ``data``'s input space, or
    a trigger (checked against the data, with an attack label where the kind needs one)."""
    cls = NT_KINDS.get(kind)
    if cls.needs == "trigger":
        trig = Trigger.parse(trigger or cls.default_trigger or "")
        trig.check(data)
        if cls.needs_target and trig.target is None:
            raise ConfigError(
                f"NT kind '{kind}' needs an attack label: add target=N to the trigger"
            )
        return None, trig
    domain = load_ood_domain(ood or "", data)
    if domain.y_train.max() >= data.num_classes:
        raise ConfigError(
            f"OOD dataset '{ood}' has labels beyond the {data.num_classes} ID classes"
        )
    return domain, None


def ood_pool(
    nt: NTKind, data: Data, domain: OODDomain | None, trig: Trigger | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The OOD training images and the targets the kind's loss uses for them."""
    if domain is not None:
        return domain.x_train, nt.ood_targets(domain.y_train, trig)
    assert trig is not None
    return trig.apply(data.x_train, data), nt.ood_targets(data.y_train, trig)


def _network(
    model: str, model_args: dict[str, Any] | None, init: str | Path | None, data: Data
) -> tuple[nn.Module, str, dict[str, Any] | None]:
    """The network to train — from ``init``'s card (its weights) or freshly made — and the
    architecture its card will record."""
    if init is not None:
        net, init_card = load_model(str(init), data)
        arch = init_card["architecture"]
        return net, arch["name"], arch.get("args", {})
    c, h, w = data.input_shape
    net = create_model(model, num_classes=data.num_classes, in_channels=c, image_size=(h, w),
                       **(model_args or {}))  # fmt: skip
    return net, model, model_args


def nt_record(
    kind: str, nt: NTKind, module: nn.Module, evaluator: DomainEval, acc: float
) -> dict[str, Any]:
    """The card's ``non_transferable`` record: the kind, its options and the NT metrics."""
    own = {k.removeprefix("teacher_"): v for k, v in evaluator.bind_teacher(module).items()}
    return {
        "kind": kind,
        **evaluator.describe(),
        "options": {k: v for k, v in vars(nt).items() if not k.startswith("gen")},
        "id_accuracy": acc,
        **own,
    }


def train_nt_teacher(
    kind: str,
    dataset: str | Data = "mnist10k",
    *,
    ood: str | None = None,
    trigger: str | None = None,
    model: str = "lenet5",
    epochs: int = 20,
    out: str | Path | None = None,
    init: str | Path | None = None,
    options: dict[str, Any] | None = None,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 1e-3,
    lr_decay: float = 0.999,
    model_args: dict[str, Any] | None = None,
    data_root: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Train a non-transferable teacher and save its card (with its NT metrics).

    Args:
        kind: ``ntl``, ``cuti`` (need ``ood``), ``watermark``, ``backdoor`` (use ``trigger``;
            defaults ``grid`` and ``square:target=0``); ``dfkd list`` shows them.
        dataset: the in-distribution dataset.
        ood: the OOD dataset (``NAME`` or ``NAME:fit=pad|stretch``): same class names as the
            ID dataset for close-set NTL, others for open-set.
        trigger: the trigger spec (``dfkd list triggers``); ``target=`` sets a backdoor's label.
        init: start from this teacher card's weights (the papers start from a pre-trained
            model, with lr 1e-4); default: from scratch.
        options: the kind's options (``alpha``, ``beta``, ``reduction``, ``gamma``, ...).
        lr, lr_decay: Adam learning rate, multiplied by ``lr_decay`` after every step (the NTL
            code's ``LambdaLR(0.999**step)``).

    Returns:
        The card (a dict, with ``"model"`` the trained module and, with ``out``, ``"path"``).
    """
    from lightning_fabric import Fabric

    cls = NT_KINDS.get(kind)
    nt = cls(**checked_args(cls, dict(options or {}), f"NT kind '{kind}'"))
    check_training_flags(kind, cls, ood, trigger, epochs, batch_size, lr, lr_decay)
    out_dir = check_out_dir(out, overwrite=overwrite) if out is not None else None
    data = load_dataset(dataset, data_root)
    domain, trig = nt_domain(kind, data, ood, trigger)
    pool_x, pool_t = ood_pool(nt, data, domain, trig)

    fabric = Fabric(accelerator="auto", devices=1, precision="32-true")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net, model, model_args = _network(model, model_args, init, data)
    net, opt = fabric.setup(net, torch.optim.Adam(net.parameters(), lr=lr))

    def step_loss(idx: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        j = torch.randint(len(pool_t), (len(idx),), generator=gen)
        batch = (data.x_train[idx], data.y_train[idx], pool_x[j], pool_t[j])
        return nt.loss(net, NTInputs(*fabric.to_device(batch), step=step), data.num_classes)

    fit = fit_classifier(
        fabric, net, opt, step_loss, n=len(data.y_train), epochs=epochs, batch_size=batch_size,
        gen=gen, lr_at=lambda step: lr * lr_decay**step, desc=f"NT teacher ({kind})",
        progress=progress, min_batch=2,
    )  # fmt: skip
    module = unwrap(net).eval()
    acc = accuracy(predict(module, data.x_test), data.y_test)
    card: dict[str, Any] = {
        "test_accuracy": acc,
        "non_transferable": nt_record(kind, nt, module, DomainEval(data, domain, trig), acc),
        "train": dict(epochs=epochs, batch_size=batch_size, optimizer="adam", lr=lr,
                      lr_decay=lr_decay, init=str(init) if init else None, seed=seed,
                      steps=fit.steps,
                      planned_steps=epochs * math.ceil(len(data.y_train) / batch_size),
                      wall_s=round(fit.wall_s, 2), final_terms=fit.logs),
    }  # fmt: skip
    return finish_teacher(card, module, data, out_dir, model=model, model_args=model_args,
                          overwrite=overwrite, command=command)  # fmt: skip

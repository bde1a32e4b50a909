"""Heads that stay with a student after training: the deployed model is ``head(student(x))``.

A plug-in's ``deployed(student)`` may return :class:`Headed`; the engine evaluates it, model
cards save the head beside the student (a second safetensors file named by the card's ``head``
record) and :func:`rebuild` makes it again from that record, whatever plug-in made it. A head
is an ``nn.Module`` registered in :data:`HEADS` with a ``kind`` and a ``config()`` returning its
constructor arguments.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry

HEADS: Registry[Any] = Registry("heads")


def register_head(name: str):
    """Decorator registering a head class under ``name`` (its ``kind``)."""
    return HEADS.register(name)


class Headed(nn.Module):
    """A student whose logits pass through a head: ``head(student(x))``."""

    def __init__(self, student: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.student = student
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.student(x))

    def record(self) -> dict[str, Any]:
        """What a card or metrics file records to rebuild the head: ``{kind, config}``."""
        return {"kind": self.head.kind, "config": self.head.config()}


def rebuild(student: nn.Module, record: dict[str, Any]) -> Headed:
    """The student with a freshly made head from ``record`` (``{kind, config}``)."""
    kind = str(record.get("kind"))
    if kind not in HEADS:
        raise ConfigError(
            f"unknown head '{kind}' in a model record (this dfkd knows {HEADS.names()})"
        )
    try:
        head = HEADS.get(kind)(**dict(record.get("config") or {}))
    except TypeError as e:
        raise ConfigError(f"head record of kind '{kind}' does not fit its class: {e}") from None
    return Headed(student, head)

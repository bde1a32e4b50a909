"""The run state: counters, history and every stateful part; the checkpoint is its
``state_dict``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..plugins import PluginSet
from ..sources import Source
from .objective import StatMemory


@dataclass
class RunState:
    """Everything a checkpoint holds: where the run is (``round``, ``step``), what it has
    recorded (``history``, ``timers``, ``last_terms``, ``class_counts``, ``synthesis``) and
    the parts that learn (student, optimiser, source, plug-ins, feature-pair adapters), plus
    the global RNG."""

    student: nn.Module
    optimizer: torch.optim.Optimizer
    source: Source
    plugins: PluginSet
    pairs: nn.Module | None
    class_counts: torch.Tensor
    round: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    timers: dict[str, float] = field(
        default_factory=lambda: {"wall_s": 0.0, "synthesis_s": 0.0, "distill_s": 0.0}
    )
    last_terms: dict[str, float] = field(default_factory=dict)
    #: per evaluation, what the source's pool holds (class histogram, per-class recall)
    synthesis: list[dict[str, Any]] = field(default_factory=list)
    #: the statistics of what was synthesised, when the statistics term blends with them
    stat_memory: StatMemory | None = None

    def state_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "step": self.step,
            "history": self.history,
            "timers": self.timers,
            "last_terms": self.last_terms,
            "synthesis": self.synthesis,
            "student": self.student.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "source": self.source.state_dict(),
            "plugins": self.plugins.state_dict(),
            "pairs": self.pairs.state_dict() if self.pairs is not None else {},
            "class_counts": self.class_counts.cpu(),
            "rng": torch.get_rng_state(),
            **({"stat_memory": self.stat_memory.state_dict()} if self.stat_memory else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.student.load_state_dict(state["student"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.source.load_state_dict(state["source"])
        self.plugins.load_state_dict(state["plugins"])
        if self.pairs is not None:
            self.pairs.load_state_dict(state["pairs"])
        torch.set_rng_state(state["rng"])
        self.round, self.step = int(state["round"]), int(state["step"])
        self.history = state["history"]
        self.timers = {k: float(v) for k, v in state["timers"].items()}
        self.last_terms = state["last_terms"]
        self.synthesis = state.get("synthesis", [])  # absent in earlier checkpoints
        self.class_counts = state["class_counts"].to(self.class_counts.device)
        if self.stat_memory is not None:
            self.stat_memory.load_state_dict(state.get("stat_memory", {}), self.class_counts.device)

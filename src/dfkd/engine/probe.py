"""What the synthetic data is: at every evaluation, the source's newest pooled images against the
real test images in the teacher's feature space — precision and recall (k-NN manifolds),
overall and per class, and the features' scale against the real ones' — and the pool's class
histogram. The real images only measure; nothing is trained, selected or stopped on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data import Data, InputMap
from ..evaluation.manifold import class_precision_recall, feature_scale, precision_recall
from ..sources import Source
from ..teachers.taps import Taps, last_linear

#: real test images and newest pooled images compared at each evaluation
PROBE_SIZE = 1000


@dataclass
class SynthesisProbe:
    """The teacher's features of the first :data:`PROBE_SIZE` test images, kept to measure the
    pool against (the run's teacher: frozen, in eval mode)."""

    teacher: nn.Module
    to_model: InputMap
    layer: str | None
    real: torch.Tensor
    real_classes: torch.Tensor
    num_classes: int
    device: torch.device

    @classmethod
    def build(cls, teacher: nn.Module, data: Data, to_model: InputMap,
              device: torch.device) -> SynthesisProbe | None:  # fmt: skip
        """A probe, or ``None`` when the dataset has no test split. ``data`` is in the
        networks' normalisation."""
        if len(data.x_test) == 0:
            return None
        probe = cls(teacher, to_model, last_linear(teacher), torch.empty(0),
                    torch.empty(0), data.num_classes, device)  # fmt: skip
        probe.real = probe.features(data.x_test[:PROBE_SIZE])[0]
        probe.real_classes = data.y_test[:PROBE_SIZE].cpu()
        return probe

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's penultimate features (its logits when it has no final linear layer)
        and its classes of ``x`` (in the networks' normalisation), on the CPU in float32."""
        feats, classes = [], []
        for chunk in x.split(250):
            f, logits = self._tapped(chunk.to(self.device))
            feats.append(f.flatten(1).float().cpu())
            classes.append(logits.argmax(1).cpu())
        return torch.cat(feats), torch.cat(classes)

    def _tapped(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's features and logits of one chunk, run eagerly: through ``_call_impl``,
        the module call that runs hooks, which a teacher compiled in place (``speed.compile``)
        would route past (its compiled graph neither calls a hook added later nor should be
        retraced for a measurement)."""
        with Taps(self.teacher, inputs=[self.layer] if self.layer else []) as taps:
            logits = self.teacher._call_impl(x)
        return (taps.inputs[self.layer] if self.layer else logits), logits

    def measure(self, source: Source) -> dict[str, Any]:
        """Precision and recall of the source's pool (empty when it has none yet)."""
        images = source.pool_images(PROBE_SIZE)
        if images is None or len(images) == 0:
            return {}
        fake, fake_classes = self.features(self.to_model(images.to(self.device)))
        precision, recall = precision_recall(self.real, fake)
        per_class = class_precision_recall(self.real, self.real_classes, fake, fake_classes,
                                           self.num_classes)  # fmt: skip
        return {"synth_precision": precision, "synth_recall": recall,
                "synth_feature_scale": feature_scale(self.real, fake),
                "class_precision": per_class["precision"],
                "class_recall": per_class["recall"]}  # fmt: skip

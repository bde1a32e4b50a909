"""Built-in plug-ins: confidence weighting against a direct computation, and in the loop."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dfkd
from dfkd.errors import ConfigError
from dfkd.losses import kl_div
from dfkd.plugins.confidence import ConfidenceWeighting, confidence_weights
from dfkd.sources import Batch


def test_confidence_weights_reference() -> None:
    t = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 0.0]])
    conf = torch.tensor([max(r) for r in t.softmax(1).tolist()])
    assert torch.allclose(confidence_weights(t, 1.0, normalize=False), conf)
    assert torch.allclose(confidence_weights(t, 2.0, normalize=False), conf**2)
    w = confidence_weights(t)
    assert w.mean().item() == pytest.approx(1.0) and w.argmax() == 0 and w.argmin() == 1
    assert torch.allclose(confidence_weights(t, 0.0), torch.ones(3))


def test_select_weights_and_drops() -> None:
    g = torch.Generator().manual_seed(0)
    t = torch.randn(8, 5, generator=g) * 3
    b = ConfidenceWeighting(min_confidence=0.6).select(Batch(x=torch.randn(8, 2), teacher_logits=t))
    conf = t.softmax(1).amax(1)
    assert len(b) == int((conf >= 0.6).sum()) and torch.all(
        b.teacher_logits.softmax(1).amax(1) >= 0.6
    )
    # the weighted KD equals the hand-weighted reference
    s = torch.randn(len(b), 5, generator=g)
    w = conf[conf >= 0.6] / conf[conf >= 0.6].mean()
    per = [kl_div(s[i : i + 1], b.teacher_logits[i : i + 1], 2.0).item() for i in range(len(b))]
    ref = sum(wi * pi for wi, pi in zip(w.tolist(), per)) / w.sum().item()
    assert kl_div(s, b.teacher_logits, 2.0, b.weight).item() == pytest.approx(ref, rel=1e-5)
    with pytest.raises(ConfigError):
        ConfidenceWeighting(power=-1)


def test_confidence_weighting_in_the_loop(teacher_dir: Path) -> None:
    m = dfkd.distill(
        teacher_dir,
        "lenet5_half",
        "kd",
        "digits",
        progress=False,
        overrides=["rounds=4", "kd_steps=5", "eval_every=2"],
        plugins=["confidence_weighting:power=2,min_confidence=0.3"],
    )
    last = m["history"][-1]
    assert 0 < last["confidence_weighting/teacher_confidence"] <= 1
    assert 0 < last["confidence_weighting/kept_fraction"] <= 1
    assert m["student_accuracy"] > 0.3  # 20 student steps; chance is 0.1
    assert "confidence_weighting" in dfkd.list_plugins()


def test_class_balance_weights_against_a_naive_reference() -> None:
    from dfkd.plugins.balance import class_balance_weights

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 5, generator=g) + torch.tensor([3.0, 1.0, 0.0, 0.0, -2.0])
    labels = logits.argmax(1).tolist()
    for power in (0.0, 0.5, 1.0):
        raw = [labels.count(c) ** -power for c in labels]
        naive = [v * len(raw) / sum(raw) for v in raw]
        got = class_balance_weights(logits, power)
        assert torch.allclose(got, torch.tensor(naive), atol=1e-5)
    w = class_balance_weights(logits, 1.0)
    per_class = {c: sum(float(w[i]) for i, y in enumerate(labels) if y == c) for c in set(labels)}
    assert max(per_class.values()) == pytest.approx(min(per_class.values()), rel=1e-5)


def test_class_balance_plugin_in_a_run(teacher_dir) -> None:
    m = dfkd.distill(teacher_dir, "lenet5_half", "dfad", "digits", plugins=["class_balance"],
                     overrides=["rounds=2"], progress=False)  # fmt: skip
    assert m["completed"] and m["history"][-1]["class_balance/max_class_weight"] >= 1.0
    with pytest.raises(dfkd.DfkdError, match="power must be in"):
        dfkd.distill(teacher_dir, "lenet5_half", "dfad", "digits",
                     plugins=["class_balance:power=2"], progress=False)  # fmt: skip

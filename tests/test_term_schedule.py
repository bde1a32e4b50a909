"""A term's weight moved over the run (``weight_end``): the cosine against a naive formula, the
loop's progress, exact resume and the config's one-line errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import dfkd
from dfkd.engine.objective import BoundTerm, bind_terms, weighted_sum
from dfkd.errors import ConfigError
from dfkd.losses import StepContext


def _ctx() -> StepContext:
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 10, generator=g), torch.randn(8, 10, generator=g)
    return StepContext("distill", torch.zeros(8, 1, 4, 4), t, s, None, None)


@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_weight_follows_a_cosine_from_weight_to_weight_end(p: float) -> None:
    (term,) = bind_terms({"kd_kl": {"weight": 2.0, "weight_end": 0.5, "T": 4.0}}, "distill")
    naive = 0.5 + (2.0 - 0.5) * (1 + math.cos(math.pi * p)) / 2
    ctx = _ctx()
    total, values = weighted_sum([term], ctx, {}, progress=p)
    assert term.weight_at(p) == pytest.approx(naive)
    assert total.item() == pytest.approx(naive * values["kd_kl"].item(), rel=1e-6)


def test_without_weight_end_the_weight_stays_and_a_zero_start_still_binds() -> None:
    (fixed,) = bind_terms({"kd_kl": {"weight": 0.7}}, "distill")
    assert fixed.weight_end is None and fixed.weight_at(0.0) == fixed.weight_at(1.0) == 0.7
    (rising,) = bind_terms({"kd_kl": {"weight": 0.0, "weight_end": 1.0}}, "distill")
    assert rising.weight_at(0.0) == 0.0 and rising.weight_at(1.0) == pytest.approx(1.0)
    assert bind_terms({"kd_kl": {"weight": 0.0, "weight_end": 0.0}}, "distill") == []


def test_a_weight_end_that_is_no_number_is_one_line(teacher_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"'synth_terms.tv.weight_end' must be a number"):
        dfkd.resolve_config("dfq", "digits", overrides=["synth_terms.tv.weight_end=abc"])


def test_the_loop_weighs_each_round_at_its_progress(
    teacher_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[float] = []
    weight_at = BoundTerm.weight_at

    def spy(self: BoundTerm, progress: float) -> float:
        if self.name == "decision_adversarial":
            seen.append(progress)
        return weight_at(self, progress)

    monkeypatch.setattr(BoundTerm, "weight_at", spy)
    over = ["rounds=4", "warmup_rounds=1", "g_steps=2",
            "synth_terms.decision_adversarial.weight_end=0.0"]  # fmt: skip
    dfkd.distill(teacher_dir, "lenet5_half", "fast", "digits", overrides=over, progress=False)
    assert sorted(set(seen)) == [0.25, 0.5, 0.75]  # the warm-up round has no student term


def test_a_scheduled_weight_resumes_to_the_unbroken_run(tmp_path: Path, teacher_dir: Path) -> None:
    over = ["rounds=4", "warmup_rounds=1", "eval_every=2", "checkpoint_every=1",
            "synth_terms.decision_adversarial.weight_end=0.0"]  # fmt: skip
    kw = dict(overrides=over, progress=False)
    full = dfkd.distill(teacher_dir, "lenet5_half", "fast", "digits", out=tmp_path / "a", **kw)
    dfkd.distill(teacher_dir, "lenet5_half", "fast", "digits", out=tmp_path / "b",
                 stop_after_rounds=2, **kw)  # fmt: skip
    done = dfkd.distill(teacher_dir, "lenet5_half", "fast", "digits", out=tmp_path / "b",
                        resume=True, **kw)  # fmt: skip
    assert done["student_accuracy"] == full["student_accuracy"]
    plain = dfkd.distill(teacher_dir, "lenet5_half", "fast", "digits", **{**kw,
                         "overrides": over[:-1]})  # fmt: skip
    assert plain["student_accuracy"] != full["student_accuracy"]  # the schedule changed the run

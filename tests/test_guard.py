"""Non-finite guards: a teacher answering NaN/Inf is refused before anything is written; a loss
term that turns NaN stops the run with one line, the last good checkpoint stays, and a resume
from it reproduces an unbroken run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import dfkd
from dfkd.cli import main
from dfkd.engine.guard import first_non_finite, non_finite_message
from dfkd.errors import NonFiniteError
from dfkd.io.files import load_state

SHORT = ["rounds=6", "kd_steps=5", "eval_every=2", "checkpoint_every=2"]


class Poisoned(nn.Module):
    """The teacher, whose logits turn to ``value`` from its ``after``-th call on."""

    def __init__(self, net: nn.Module, after: int | None, value: float = math.nan) -> None:
        super().__init__()
        self.net, self.after, self.value, self.calls = net, after, value, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.net(x)
        if self.after is not None and self.calls > self.after:
            return out * self.value
        return out


def _teacher(teacher_dir: Path, after: int | None, value: float = math.nan) -> Poisoned:
    net, _ = dfkd.load_model(teacher_dir)
    return Poisoned(net, after, value)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_teacher_answering_nan_or_inf_is_refused_before_anything_is_written(
    value: float, teacher_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    with pytest.raises(NonFiniteError, match="teacher's outputs hold NaN or Inf on 64 of 64"):
        dfkd.distill(_teacher(teacher_dir, 0, value), "lenet5_half", "dfq", "digits", out=out,
                     overrides=SHORT, progress=False)  # fmt: skip
    assert not out.exists()


def test_cli_refuses_a_teacher_with_nan_weights_in_one_line(teacher_dir: Path, tmp_path: Path,
                                                            capsys) -> None:  # fmt: skip
    bad = tmp_path / "bad"
    net, card = dfkd.load_model(teacher_dir)
    with torch.no_grad():
        next(net.parameters()).fill_(math.nan)
    dfkd.save_model(bad, "teacher", net, architecture=card["architecture"],
                    data=dfkd.load_dataset("digits"), role="teacher")  # fmt: skip
    code = main(["distill", "dfq", "--teacher", str(bad), "--dataset", "digits",
                 "--out", str(tmp_path / "run"), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "NaN or Inf" in err[0]
    assert not (tmp_path / "run").exists()


def test_a_nan_loss_stops_the_run_keeps_the_last_checkpoint_and_resumes(
    teacher_dir: Path, tmp_path: Path
) -> None:
    # calls: 1 probe, 1 test-split prediction, then one per student step; NaN from round 4
    poisoned = _teacher(teacher_dir, 2 + 3 * 5 + 2)
    kw = dict(student="lenet5_half", method="kd", dataset="digits", overrides=SHORT,
              progress=False)  # fmt: skip
    with pytest.raises(NonFiniteError) as e:
        dfkd.distill(poisoned, out=tmp_path / "b", **kw)
    line = str(e.value)
    assert "\n" not in line and "round 4" in line and "distillation loss term 'kd_kl'" in line
    assert "checkpoint of round 2 is intact" in line
    state = load_state(tmp_path / "b" / "checkpoint.safetensors")
    assert state["round"] == 2
    assert all(torch.isfinite(v).all() for v in state["student"].values())
    assert not (tmp_path / "b" / "student.safetensors").exists()
    healthy = _teacher(teacher_dir, None)
    again = dfkd.distill(healthy, out=tmp_path / "b", resume=True, **kw)
    full = dfkd.distill(_teacher(teacher_dir, None), out=tmp_path / "a", **kw)
    assert again["student_accuracy"] == full["student_accuracy"]
    wa, wb = (load_file(tmp_path / d / "student.safetensors") for d in "ab")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_messages_name_the_phase_and_the_missing_checkpoint() -> None:
    found = first_non_finite({"synth/stat_match": 1.0, "synth/adversarial": -math.inf})
    assert found == ("synth/adversarial", -math.inf)
    msg = non_finite_message(found, 1, None)
    assert "synthesis loss term 'adversarial'" in msg and "no checkpoint" in msg
    assert first_non_finite({"kd_kl": 0.5}) is None
    assert "another process" in non_finite_message(None, 3, 2)

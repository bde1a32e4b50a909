"""The ``ema`` plug-in: the average against its closed form, the hooks' step accounting, the
deployed average (saved, evaluated, resumed)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import dfkd
from dfkd.errors import ConfigError
from dfkd.models.heads import Headed
from dfkd.plugins.ema import StudentEMA, ema_decay, ema_step

from .conftest import assert_resume_matches

G = torch.Generator
SHORT = ["rounds=3", "kd_steps=4", "g_steps=2", "eval_every=1", "checkpoint_every=1"]


def test_ema_step_matches_the_closed_form() -> None:
    d, g = 0.7, G().manual_seed(0)
    w = [torch.randn(5, generator=g) for _ in range(6)]
    avg = w[0].clone()
    for x in w[1:]:
        avg = ema_step(avg, x, d)
    n = len(w) - 1
    ref = d**n * w[0] + sum((1 - d) * d ** (n - k) * w[k] for k in range(1, n + 1))
    assert torch.allclose(avg, ref, atol=1e-6)


def test_ema_decay_warms_up_to_its_cap() -> None:
    assert ema_decay(0, 0.999) == pytest.approx(0.1)
    assert ema_decay(90, 0.999) == pytest.approx(91 / 100)
    assert ema_decay(10**6, 0.999) == 0.999
    assert ema_decay(0, 0.999, warmup=False) == 0.999
    with pytest.raises(ConfigError, match="decay must be in"):
        StudentEMA(decay=1.0)


def _student() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_hooks_fold_in_each_step_once() -> None:
    student = _student()
    ema = StudentEMA(decay=0.5, warmup=False)
    ema.setup(SimpleNamespace(student=student))
    w = nn.utils.parameters_to_vector(student.parameters()).detach().clone()
    ref, ref_mean = w.clone(), torch.zeros(4)
    for round_steps in (2, 3):
        for _ in range(round_steps):
            ema.observe(None)  # a student step follows
            with torch.no_grad():
                for p in student.parameters():
                    p.add_(torch.randn_like(p))
                student[1].running_mean.add_(1.0)
                student[1].num_batches_tracked += 1
            w = nn.utils.parameters_to_vector(student.parameters()).detach()
            ref = ema_step(ref, w, 0.5)
            ref_mean = ema_step(ref_mean, student[1].running_mean, 0.5)
        assert ema.round_end({})["decay"] == 0.5
        ema.round_end({})  # no step since: nothing changes
    assert ema.average is not None and int(ema.updates) == 5
    avg = nn.utils.parameters_to_vector(ema.average.parameters())
    assert torch.allclose(avg, ref, atol=1e-6)
    bn = ema.average[1]
    assert torch.allclose(bn.running_mean, ref_mean)  # averaged buffers
    assert int(bn.num_batches_tracked) == 5  # integer buffers copied
    assert not any(p.requires_grad for p in ema.average.parameters())


def test_deployed_is_the_average_also_behind_a_head() -> None:
    student = _student()
    ema = StudentEMA()
    ema.setup(SimpleNamespace(student=student))
    assert ema.deployed(student) is ema.average
    head = nn.Identity()
    wrapped = ema.deployed(Headed(student, head))
    assert isinstance(wrapped, Headed) and wrapped.student is ema.average and wrapped.head is head
    with pytest.raises(ConfigError, match="list it before"):
        ema.deployed(nn.Linear(3, 2))


def test_the_average_is_saved_evaluated_and_resumed(teacher_dir: Path, tmp_path: Path) -> None:
    dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", out=tmp_path / "plain",
                 overrides=SHORT, progress=False)  # fmt: skip
    full, _ = assert_resume_matches(teacher_dir, "dfq", tmp_path, 1, plugins=["ema:decay=0.9"],
                                    overrides=SHORT, progress=False)  # fmt: skip
    assert full["history"][-1]["ema/decay"] == ema_decay(full["steps"] - 1, 0.9)
    a, b = (load_file(tmp_path / d / "student.safetensors") for d in ("a", "plain"))
    assert a.keys() == b.keys() and not all(torch.equal(a[k], b[k]) for k in a)
    again = dfkd.evaluate(tmp_path / "a", "digits")["accuracy"]
    assert again == pytest.approx(full["student_accuracy"])

"""``speed.channels_last`` and ``speed.compile`` change how the networks run, not what they
compute (``compile_backend: eager`` here: the same arithmetic, so the same weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dfkd

SHORT = ["rounds=2", "kd_steps=3", "g_steps=2", "eval_every=2", "checkpoint_every=2"]


@pytest.mark.parametrize("method", ["dfq", "nayer"])
def test_compiled_networks_train_to_the_same_weights(method: str, teacher_dir: Path) -> None:
    plain = dfkd.distill(teacher_dir, "lenet5_half", method, "digits", overrides=SHORT,
                         progress=False)  # fmt: skip
    compiled = dfkd.distill(teacher_dir, "lenet5_half", method, "digits", progress=False,
                            overrides=[*SHORT, "speed.compile=true",
                                       "speed.compile_backend=eager"])  # fmt: skip
    a, b = plain["student"].state_dict(), compiled["student"].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert getattr(compiled["student"], "_compiled_call_impl", None) is not None


def test_channels_last_students_train(teacher_dir: Path) -> None:
    m = dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", progress=False,
                     overrides=[*SHORT, "speed.channels_last=true"])  # fmt: skip
    conv = next(p for p in m["student"].parameters() if p.dim() == 4)
    assert m["completed"] and conv.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.isfinite(p).all() for p in m["student"].parameters())

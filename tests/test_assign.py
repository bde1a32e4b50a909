"""Balanced target classes: the assignment against brute force, and the meta generator's
``targets: balanced`` option."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

import dfkd
from dfkd.errors import ConfigError
from dfkd.sources import MetaGeneratorSource, SourceEnv
from dfkd.sources.assign import balanced_targets

from .conftest import digits_env


def _best_by_brute_force(logits: torch.Tensor, share: int) -> float:
    """The highest summed log-probability of any assignment with at most ``share`` per class."""
    logp = torch.log_softmax(logits, dim=1)
    b, c = logp.shape
    best = -float("inf")
    for t in itertools.product(range(c), repeat=b):
        if max(t.count(k) for k in range(c)) <= share:
            best = max(best, sum(float(logp[i, k]) for i, k in enumerate(t)))
    return best


@pytest.mark.parametrize(("b", "c", "seed"), [(6, 3, 0), (7, 3, 1), (5, 2, 2), (4, 4, 3)])
def test_balanced_targets_match_brute_force(b: int, c: int, seed: int) -> None:
    logits = torch.randn(b, c, generator=torch.Generator().manual_seed(seed)) * 3
    t = balanced_targets(logits, c)
    share = -(-b // c)
    assert t.dtype == torch.int64 and t.shape == (b,)
    assert torch.bincount(t, minlength=c).max() <= share
    got = float(torch.log_softmax(logits, 1).gather(1, t[:, None]).sum())
    assert got == pytest.approx(_best_by_brute_force(logits, share), abs=1e-5)


def test_balanced_targets_cover_every_class_of_a_one_class_batch() -> None:
    logits = torch.zeros(20, 10)
    logits[:, 3] = 8.0  # the teacher puts every image in class 3
    logits[:, 7] = torch.linspace(0, 4, 20)  # its second choice varies
    t = balanced_targets(logits, 10)
    assert torch.equal(torch.bincount(t, minlength=10), torch.full((10,), 2))
    assert set(t[logits[:, 7] > 3.9].tolist()) <= {3, 7}  # the nearest to 7 keep 3 or 7


def test_balanced_targets_refuse_the_wrong_width() -> None:
    with pytest.raises(ValueError, match="B×10"):
        balanced_targets(torch.zeros(4, 3), 10)


@pytest.fixture(scope="module")
def env(digits: dfkd.Data, teacher_dir: Path) -> SourceEnv:
    return digits_env(digits, teacher_dir, 40, rounds=4, g_steps=2)


def test_meta_generator_balanced_targets_fit_the_teacher(env: SourceEnv) -> None:
    src = MetaGeneratorSource(nz=8, bank=64, targets="balanced")
    src.setup(env)
    t = src.draw().extras["targets"]
    assert torch.equal(torch.bincount(t, minlength=10), torch.full((10,), 4))
    with torch.no_grad():
        first = env.teacher(src.fast(src.z))
    assert torch.equal(t, balanced_targets(first, 10))
    plain = MetaGeneratorSource(nz=8, bank=64, targets=True)
    plain.setup(env)
    assert not torch.equal(plain.draw().extras["targets"], t)
    assert "targets" not in _drawn_extras(MetaGeneratorSource(nz=8, bank=64, targets=False), env)


def _drawn_extras(src: MetaGeneratorSource, env: SourceEnv) -> dict:
    src.setup(env)
    return src.draw().extras


def test_meta_generator_refuses_an_unknown_target_rule() -> None:
    with pytest.raises(ConfigError, match="targets must be true, false or one of"):
        MetaGeneratorSource(targets="uniform")


def test_fast_distils_with_balanced_targets(teacher_dir: Path) -> None:
    m = dfkd.distill(
        teacher_dir,
        "lenet5_half",
        "fast",
        "digits",
        progress=False,
        overrides=["rounds=3", "warmup_rounds=1", "source.args.targets=balanced"],
    )
    assert m["completed"] and m["rounds"] == 3

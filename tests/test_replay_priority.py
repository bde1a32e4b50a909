"""The pool's priority replay (``replay_candidates``): the student is replayed the pooled
images it fits worst among uniformly drawn candidates."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import dfkd
from dfkd.errors import ConfigError
from dfkd.sources import SourceEnv
from dfkd.sources.pool import DataPool, PoolOptions, hardest, misfit

from .conftest import assert_resume_matches, digits_env


def test_hardest_is_the_largest_losses_first_ties_in_order() -> None:
    losses = torch.tensor([0.5, 2.0, 0.1, 2.0, 3.0, 0.5])
    naive = sorted(range(len(losses)), key=lambda i: (-float(losses[i]), i))
    for n in range(1, len(losses) + 1):
        assert hardest(losses, n).tolist() == naive[:n]


def test_misfit_is_the_per_image_cross_entropy_and_leaves_the_student_as_it_was() -> None:
    torch.manual_seed(0)
    student = dfkd.create_model("lenet5_half", num_classes=10, in_channels=1, image_size=8)
    student.train()
    x, classes = torch.randn(6, 1, 8, 8), torch.tensor([0, 3, -1, 9, 3, 1])
    before = {k: v.clone() for k, v in student.state_dict().items()}
    got = misfit(student, x, classes)
    assert student.training
    for k, v in student.state_dict().items():  # BatchNorm running statistics included
        assert torch.equal(v, before[k]), k
    student.eval().requires_grad_(False)
    for i, c in enumerate(classes.tolist()):
        want = 0.0 if c < 0 else float(F.cross_entropy(student(x[i : i + 1]), torch.tensor([c])))
        assert float(got[i]) == pytest.approx(want, abs=1e-5)


def _pool(env: SourceEnv, candidates: int, classes: torch.Tensor) -> DataPool:
    options = PoolOptions(bank=64, replay_shift=0, replay_candidates=candidates)
    pool = DataPool(options, env, torch.Generator().manual_seed(3), torch.zeros(1, 1, 1, 1))
    gen = torch.Generator().manual_seed(1)
    pool.bank.add(torch.randn(40, 1, 8, 8, generator=gen), classes)
    return pool


def test_the_replay_is_the_worst_fitted_of_the_drawn_candidates(
    digits: dfkd.Data, teacher_dir: Path
) -> None:
    env = digits_env(digits, teacher_dir, 8)
    pool = _pool(env, 3, torch.arange(40) % 10)
    drawn = torch.Generator().set_state(pool.gen.get_state())
    candidates = torch.randint(0, len(pool), (24,), generator=drawn)  # what the pool draws
    batch = pool.replay(8)
    env.student.eval()
    with torch.no_grad():
        scores = env.student(pool.bank.data[candidates])
        losses = [float(F.cross_entropy(scores[j : j + 1], pool.bank.classes[i : i + 1]))
                  for j, i in enumerate(candidates)]  # fmt: skip
    worst = sorted(range(24), key=lambda j: (-losses[j], j))[:8]
    assert torch.equal(batch.x, pool.bank.data[candidates[worst]])
    assert min(losses[j] for j in worst) >= max(losses[j] for j in range(24) if j not in worst)


def test_the_student_is_scored_in_the_networks_normalisation(
    digits: dfkd.Data, teacher_dir: Path
) -> None:
    """With a map that blanks every image, every candidate of one class fits alike: the first
    ones win."""
    env = dataclasses.replace(digits_env(digits, teacher_dir, 8), to_model=torch.zeros_like)
    pool = _pool(env, 2, torch.full((40,), 4))
    drawn = torch.Generator().set_state(pool.gen.get_state())
    candidates = torch.randint(0, len(pool), (16,), generator=drawn)
    assert torch.equal(pool.replay(8).x, pool.bank.data[candidates[:8]])


def test_replay_candidates_are_checked() -> None:
    build = dfkd.sources.build_source
    with pytest.raises(ConfigError, match="replay_candidates must be ≥ 1, got 0"):
        build("meta_generator", {"replay_candidates": 0})
    with pytest.raises(ConfigError, match="source 'generator': replay_\\* and admit apply"):
        build("generator", {"replay_candidates": 2})  # no bank: nothing is replayed


@pytest.mark.parametrize("method", ["fast", "dafl"])
def test_a_run_with_priority_replay_resumes_bit_exactly(
    method: str, teacher_dir: Path, tmp_path: Path
) -> None:
    """``dafl``'s pool keeps no classes by itself: with priority replay it classifies what it
    pools. One thread: a choice among near-equal losses turns a last-bit difference (two threads
    on a loaded machine) into another batch."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _resumes(method, teacher_dir, tmp_path)
    finally:
        torch.set_num_threads(threads)


def _resumes(method: str, teacher_dir: Path, tmp_path: Path) -> None:
    overrides = ["rounds=4", "eval_every=2", "checkpoint_every=2",
                 "source.args.replay_candidates=2", "source.args.bank=512"]  # fmt: skip
    full, _ = assert_resume_matches(teacher_dir, method, tmp_path, 2, overrides=overrides,
                                    progress=False)  # fmt: skip
    assert full["student_accuracy"] > 0

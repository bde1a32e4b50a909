"""Cached replay targets: a pool that keeps its images' teacher logits, so that the student's
replays cost no teacher forward."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dfkd
from dfkd.errors import ConfigError
from dfkd.sources import MemoryBank
from dfkd.sources.bank import replay

from .conftest import assert_resume_matches


def _label(x: torch.Tensor) -> torch.Tensor:
    """A stand-in teacher: two logits per sample, from its pixels."""
    flat = x.flatten(1)
    return torch.stack([flat.sum(1), -flat.amax(1)], 1)


def test_bank_keeps_each_samples_labels_through_overwrites_and_state() -> None:
    bank = MemoryBank(5, label=_label)
    gen = torch.Generator().manual_seed(0)
    for k in range(3):  # 9 samples into 5 slots: the oldest are overwritten
        bank.add(torch.rand(3, 1, 2, 2, generator=gen) + k)
    x, logits = bank.draw(40, torch.Generator().manual_seed(1))
    assert logits is not None and torch.equal(logits, _label(x))  # each row with its own image
    other = MemoryBank(5, label=_label)
    other.load_state_dict(bank.state_dict())
    x2, logits2 = other.draw(40, torch.Generator().manual_seed(1))
    assert torch.equal(x2, x) and logits2 is not None and torch.equal(logits2, logits)
    assert torch.equal(bank.sample(40, torch.Generator().manual_seed(1)), x)  # same draws


def test_bank_without_label_draws_no_logits_and_a_batch_larger_than_capacity_is_cut() -> None:
    plain = MemoryBank(4)
    plain.add(torch.zeros(2, 1))
    assert plain.draw(3, torch.Generator())[1] is None
    bank = MemoryBank(4, label=lambda x: x * 10)
    bank.add(torch.arange(6.0).view(6, 1))  # only the last four are kept, with their labels
    assert sorted(bank.data.flatten().tolist()) == [2.0, 3.0, 4.0, 5.0]
    assert torch.equal(bank.logits, bank.data * 10)


def test_replay_augments_the_image_but_keeps_the_pooled_images_logits() -> None:
    bank = MemoryBank(8, label=_label)
    bank.add(torch.rand(8, 1, 6, 6, generator=torch.Generator().manual_seed(2)))
    batch = replay(bank, 16, torch.Generator().manual_seed(3), 2, True, torch.tensor(0.0),
                   lambda t: t)  # fmt: skip
    x, logits = bank.draw(16, torch.Generator().manual_seed(3))  # the same draws, unaugmented
    assert torch.equal(batch.teacher_logits, logits)
    assert not torch.equal(batch.x, x)  # the views were shifted or flipped


@pytest.mark.parametrize(
    "source", ["meta_generator", "noisy_generator", "cmi_generator", "generator", "pixels"]
)
def test_every_pool_source_refuses_an_unknown_replay_target(source: str) -> None:
    with pytest.raises(ConfigError, match="replay_targets must be one of"):
        dfkd.sources.build_source(source, {"replay_targets": "stale", "bank": 8})


def test_generator_without_bank_refuses_cached_targets() -> None:
    with pytest.raises(ConfigError, match="set bank"):
        dfkd.sources.build_source("generator", {"replay_targets": "cached"})


class _Counting(torch.nn.Module):
    """Counts the images a teacher is run on without gradient (the student's labels)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net, self.images = net, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            self.images += len(x)
        return self.net(x)


@pytest.mark.parametrize("method", ["fast", "nayer", "deepinversion"])
def test_cached_targets_spare_the_teacher_every_replay(method: str, teacher_dir: Path) -> None:
    net, _ = dfkd.load_model(teacher_dir)
    counted = {}
    for targets in ("fresh", "cached"):
        teacher = _Counting(net)
        over = ["rounds=3", "kd_steps=6", f"source.args.replay_targets={targets}"]
        m = dfkd.distill(teacher, "lenet5_half", method, "digits", overrides=over,
                         progress=False)  # fmt: skip
        counted[targets] = teacher.images
        assert 0 <= m["student_accuracy"] <= 1
    cfg = dfkd.resolve_config(method, "digits", overrides=["rounds=3", "kd_steps=6"])
    replayed = (cfg.rounds - cfg.warmup) * cfg.kd_steps * cfg.batch_size
    pooled = cfg.rounds * cfg.source.args["synth_batch_size"]
    # fresh: the teacher labels every replayed image; cached: every pooled one, once
    assert counted["fresh"] - counted["cached"] == replayed - pooled


def test_cached_targets_resume_bit_exactly(teacher_dir: Path, tmp_path: Path) -> None:
    over = ["rounds=5", "warmup_rounds=1", "eval_every=5", "checkpoint_every=5",
            "source.args.replay_targets=cached"]  # fmt: skip
    assert_resume_matches(teacher_dir, "fast", tmp_path, 2, overrides=over, progress=False)

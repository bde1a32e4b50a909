"""Mixup of replayed pool images (``replay_mix``): each replay is a convex mixture of two pooled
images, the larger share its own, labelled fresh by the teacher."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import dfkd
from dfkd.data.augment import mixup
from dfkd.errors import ConfigError
from dfkd.sources import MemoryBank
from dfkd.sources.bank import replay

POOL_SOURCES = ["meta_generator", "noisy_generator", "cmi_generator", "generator", "pixels"]


def _coefficients(mixed: torch.Tensor) -> torch.Tensor:
    """Mixtures of the basis images ``e_0 … e_{b-1}`` (one pixel each) → the b×b weights."""
    return mixed.flatten(1)


def test_mixup_mixes_each_image_with_one_partner_and_keeps_the_larger_share() -> None:
    b = 64
    basis = torch.eye(b).view(b, 1, 1, b)  # image i is the one-hot pixel i
    w = _coefficients(mixup(basis, 0.4, torch.Generator().manual_seed(0)))
    own = w.diagonal()
    torch.testing.assert_close(w.sum(1), torch.ones(b))  # convex
    assert bool((own >= 0.5).all()) and bool((own <= 1).all())
    others = w - torch.diag(own)
    assert bool(((others > 0).sum(1) <= 1).all())  # at most one partner (none if it drew itself)
    partner_share = others.sum(1)
    torch.testing.assert_close(partner_share, 1 - own)


def test_mixup_shares_follow_a_folded_beta() -> None:
    """α = 1: λ = max(U, 1 − U) with U uniform, so λ is uniform on [½, 1] (mean ¾)."""
    basis = torch.eye(256).view(256, 1, 1, 256)
    draws = [mixup(basis, 1.0, torch.Generator().manual_seed(s)) for s in range(8)]
    lams = torch.cat([_coefficients(d).diagonal() for d in draws])
    lams = lams[lams < 1]  # drop images that drew themselves as partner
    assert abs(float(lams.mean()) - 0.75) < 0.02
    assert float(lams.min()) >= 0.5 and abs(float((lams < 0.75).float().mean()) - 0.5) < 0.05


def test_mixup_off_and_seeded() -> None:
    x = torch.randn(5, 2, 3, 3)
    assert mixup(x, 0.0, torch.Generator()) is x
    single = x[:1]
    assert mixup(single, 0.5, torch.Generator()) is single  # no partner to mix with
    a = mixup(x, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(a, mixup(x, 0.5, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, x)


def test_replay_mixes_pooled_images_and_leaves_the_targets_to_the_teacher() -> None:
    bank = MemoryBank(16)
    bank.add(torch.eye(16).view(16, 1, 1, 16))
    batch = replay(bank, 32, torch.Generator().manual_seed(2), 0, False, torch.tensor(0.0),
                   lambda t: t, mix=0.4)  # fmt: skip
    assert batch.teacher_logits is None
    w = batch.x.flatten(1)
    torch.testing.assert_close(w.sum(1), torch.ones(32))
    assert bool((w.amax(1) >= 0.5).all()) and bool(((w > 0).sum(1) <= 2).all())
    assert bool(((w > 0).sum(1) == 2).any())  # some replays are mixtures


@pytest.mark.parametrize("source", POOL_SOURCES)
def test_every_pool_source_takes_replay_mix_and_refuses_it_with_cached_targets(
    source: str,
) -> None:
    built = dfkd.sources.build_source(source, {"replay_mix": 0.4, "bank": 8})
    assert built.pool_options.replay_mix == 0.4
    with pytest.raises(ConfigError, match="replay_mix needs replay_targets: fresh"):
        dfkd.sources.build_source(
            source, {"replay_mix": 0.4, "replay_targets": "cached", "bank": 8}
        )
    with pytest.raises(ConfigError, match="replay_mix must be ≥ 0"):
        dfkd.sources.build_source(source, {"replay_mix": -1.0, "bank": 8})


def test_generator_without_bank_refuses_replay_mix() -> None:
    with pytest.raises(ConfigError, match="set bank"):
        dfkd.sources.build_source("generator", {"replay_mix": 0.4})


def test_mixed_replays_train_and_resume_bit_exactly(teacher_dir: Path, tmp_path: Path) -> None:
    over = ["rounds=5", "warmup_rounds=1", "eval_every=5", "checkpoint_every=5",
            "source.args.replay_mix=0.4"]  # fmt: skip
    kw = dict(student="lenet5_half", method="fast", dataset="digits", progress=False,
              overrides=over)  # fmt: skip
    m = dfkd.distill(teacher_dir, out=tmp_path / "a", **kw)
    assert 0 <= m["student_accuracy"] <= 1
    dfkd.distill(teacher_dir, out=tmp_path / "b", stop_after_rounds=2, **kw)
    dfkd.distill(teacher_dir, out=tmp_path / "b", resume=True, **kw)
    wa = load_file(tmp_path / "a" / "student.safetensors")
    wb = load_file(tmp_path / "b" / "student.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)

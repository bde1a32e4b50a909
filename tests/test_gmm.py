"""TA-DFKD's clean-sample selection (gmm_selection), batch refilling, and the ta_dfkd method."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import dfkd
from dfkd.errors import ConfigError
from dfkd.plugins import PLUGINS
from dfkd.plugins.gmm import clean_probability, select_clean, teacher_self_loss
from dfkd.sources.base import Batch

from .conftest import assert_resume_matches


def noisy_batch(n_clean: int = 80, n_noisy: int = 20, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Teacher logits: confident samples (one class far ahead) and near-uniform ones."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.randn(n_clean, 10, generator=g) * 0.3
    clean[torch.arange(n_clean), torch.randint(0, 10, (n_clean,), generator=g)] += 8.0
    noisy = torch.randn(n_noisy, 10, generator=g) * 0.3
    logits = torch.cat([clean, noisy])
    perm = torch.randperm(len(logits), generator=g)
    truth = torch.cat([torch.ones(n_clean), torch.zeros(n_noisy)]).bool()
    return logits[perm], truth[perm]


def test_teacher_self_loss_is_ce_against_own_argmax() -> None:
    t = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    ref = torch.nn.functional.cross_entropy(t, t.argmax(1), reduction="none")
    assert torch.allclose(teacher_self_loss(t), ref, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gmm_keeps_the_clean_samples_and_drops_the_noisy(seed: int) -> None:
    logits, truth = noisy_batch(seed=seed)
    keep = select_clean(logits)
    assert torch.equal(keep, truth)
    p = clean_probability(teacher_self_loss(logits))
    assert p[truth].min() > 0.9 and p[~truth].max() < 0.1


def test_degenerate_batches_keep_samples() -> None:
    same = torch.zeros(8, 10)  # every loss equal: nothing to separate
    assert select_clean(same).all()
    assert select_clean(torch.randn(1, 10)).all()  # a single sample
    two = torch.tensor([[5.0, 0.0], [0.0, 0.0]])
    assert select_clean(two).sum() >= 1
    logits, _ = noisy_batch()
    assert select_clean(logits, threshold=0.999999).sum() >= 1  # never empties a batch


def test_plugin_options_are_checked(teacher_dir: Path) -> None:
    with pytest.raises(ConfigError, match="threshold"):
        dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits",
                     plugins=["gmm_selection:threshold=1.5"])  # fmt: skip


def test_batch_cat_joins_fields() -> None:
    a = Batch(x=torch.zeros(2, 1), teacher_logits=torch.zeros(2, 3), extras={"z": torch.ones(2)})
    b = Batch(x=torch.ones(3, 1), teacher_logits=torch.ones(3, 3), weight=torch.full((3,), 2.0))
    c = Batch.cat([a, b])
    assert len(c) == 5 and c.teacher_logits.shape == (5, 3) and c.labels is None
    assert c.weight.tolist() == [1, 1, 2, 2, 2] and "z" not in c.extras


def kept_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "history.csv") as f:
        return list(csv.DictReader(f))


GENERATOR_METHODS = [
    n for n in dfkd.list_methods() if dfkd.resolve_config(n, "digits").source.name == "generator"
]


@pytest.mark.parametrize("method", GENERATOR_METHODS)
def test_gmm_selection_composes_with_every_generator_method(method: str, teacher_dir: Path) -> None:
    over = ["rounds=1", "kd_steps=3"]
    m = dfkd.distill(teacher_dir, "lenet5_half", method, "digits", overrides=over,
                     plugins=["gmm_selection"], progress=False)  # fmt: skip
    assert m["completed"] and m["steps"] == 3 and len(m["history"]) == 1
    assert 0 < m["history"][0]["gmm_selection/kept_fraction"] <= 1
    assert 0 < m["history"][0]["gmm_selection/synth_kept_fraction"] <= 1


def test_gmm_selection_refuses_a_pixel_source(teacher_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not fit method 'deepinversion'.*generator"):
        dfkd.distill(teacher_dir, "lenet5_half", "deepinversion", "digits",
                     plugins=["gmm_selection"], progress=False)  # fmt: skip


SIZES: list[int] = []


class SizeProbe(dfkd.Plugin):
    """Records the size of every batch the student trains on."""

    def adjust_logits(self, batch: Batch, logits: torch.Tensor) -> torch.Tensor:
        SIZES.append(len(batch))
        return logits


@pytest.fixture
def size_probe() -> Iterator[list[int]]:
    PLUGINS.register("test_size_probe", SizeProbe)
    SIZES.clear()
    yield SIZES
    PLUGINS.unregister("test_size_probe")


@pytest.mark.parametrize("fill", [0, 16])
def test_fill_selected_trains_on_exactly_batch_size(
    teacher_dir: Path, fill: int, size_probe: list[int]
) -> None:
    over = ["rounds=3", "kd_steps=4", "batch_size=64", f"fill_selected={fill}"]
    dfkd.distill(teacher_dir, "lenet5_half", "ta_dfkd", "digits", overrides=over,
                 plugins=["gmm_selection", "test_size_probe"], progress=False)  # fmt: skip
    assert len(size_probe) == 12
    if fill:
        assert set(size_probe) == {64}
    else:
        assert max(size_probe) <= 64 and min(size_probe) >= 1 and min(size_probe) < 64


def test_gmm_run_resumes_exactly(teacher_dir: Path, tmp_path: Path) -> None:
    over = ["rounds=4", "kd_steps=3", "eval_every=2", "checkpoint_every=2"]
    assert_resume_matches(teacher_dir, "ta_dfkd", tmp_path, 2, overrides=over, progress=False)
    timers = {"wall_s", "synthesis_s", "distill_s"}
    drop = lambda rows: [{k: v for k, v in r.items() if k not in timers} for r in rows]  # noqa: E731
    assert drop(kept_rows(tmp_path / "a")) == drop(kept_rows(tmp_path / "b"))

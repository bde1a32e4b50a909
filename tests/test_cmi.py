"""CMI: the contrastive loss, the local views, the per-batch generator, the contrastive source
(head, memory, exact state) and the method end to end."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import dfkd
from dfkd.data.augment import random_resized_crop
from dfkd.engine.objective import teacher_taps
from dfkd.losses.contrastive import instance_contrastive_loss
from dfkd.losses.generator import one_hot_loss
from dfkd.losses.terms import StepContext
from dfkd.sources import CMISource, SourceEnv
from dfkd.sources.meta_generator import reset_weights
from dfkd.teachers.taps import contrast_layers

from .conftest import digits_env


def _naive_infonce(local: torch.Tensor, glob: torch.Tensor, n: int, T: float) -> float:
    rows = []
    for i in range(len(local)):
        logits = [float(local[i] @ glob[j]) / T for j in range(len(glob))]
        top = max(logits)
        log_z = top + math.log(sum(math.exp(v - top) for v in logits))
        rows.append(log_z - logits[i])
    if len(local) > n:
        return sum(rows[:n]) / n + sum(rows[n:]) / (len(rows) - n)
    return sum(rows) / len(rows)


@pytest.mark.parametrize("n", [6, 4])
def test_instance_contrastive_loss_against_a_naive_reference(n: int) -> None:
    g = torch.Generator().manual_seed(0)
    local = nn.functional.normalize(torch.randn(6, 5, generator=g), dim=1)
    glob = nn.functional.normalize(torch.randn(6, 5, generator=g), dim=1)
    got = instance_contrastive_loss(local, glob, n, T=0.2).item()
    assert got == pytest.approx(_naive_infonce(local, glob, n, 0.2), rel=1e-5)


def test_contrastive_loss_gives_no_gradient_to_the_global_views() -> None:
    local = torch.randn(4, 3, requires_grad=True)
    glob = torch.randn(4, 3, requires_grad=True)
    instance_contrastive_loss(local, glob, 4).backward()
    assert local.grad is not None and glob.grad is None


def test_random_resized_crop_of_the_whole_image_is_the_image() -> None:
    x = torch.randn(3, 2, 8, 8, requires_grad=True)
    g = torch.Generator().manual_seed(0)
    same = random_resized_crop(x, g, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    assert torch.allclose(same, x, atol=1e-5)
    crop = random_resized_crop(x, g, scale=(0.25, 0.5))
    assert crop.shape == x.shape and not torch.allclose(crop, x)
    crop.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_reset_weights_draws_new_small_weights() -> None:
    net = dfkd.create_generator("light_generator", nz=8, out_channels=1, image_size=8)
    g = torch.Generator().manual_seed(0)
    reset_weights(net, g)
    first = [p.detach().clone() for p in net.parameters()]
    reset_weights(net, g)
    w, b = net.fc.weight.detach(), net.fc.bias.detach()
    assert abs(float(w.std()) - 0.02) < 0.005 and float(b.abs().sum()) == 0
    assert any(not torch.equal(a, b) for a, b in zip(first, net.parameters()))


def test_contrast_layers() -> None:
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 3))
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    assert contrast_layers(conv) == ["0", "3"] and contrast_layers(mlp) == ["1"]


@pytest.fixture(scope="module")
def env(digits: dfkd.Data, teacher_dir: Path) -> SourceEnv:
    return digits_env(digits, teacher_dir, 16, g_steps=2)


def _source(env: SourceEnv) -> CMISource:
    src = CMISource(nz=8, bank=64, memory=40, negatives=24, head_dim=8, shift=0, replay_shift=0)
    src.setup(env)
    return src


def _step(src: CMISource, env: SourceEnv) -> dict[str, torch.Tensor]:
    batch = src.draw()
    with teacher_taps(env.teacher, set(src.synth_needs)) as taps:
        logits = env.teacher(batch.x)
    ctx = StepContext("synth", batch.x, logits, taps=taps.as_context(), extras=batch.extras)
    terms = src.synth_terms(ctx)
    src.update(one_hot_loss(logits) + sum(terms.values()))
    return terms


def test_cmi_source_trains_its_head_and_remembers_each_rounds_best_features(
    env: SourceEnv,
) -> None:
    src = _source(env)
    head = [p.detach().clone() for p in src.head.parameters()]
    terms = _step(src, env)
    assert set(terms) == {"contrastive"} and terms["contrastive"].item() > 0
    assert any(not torch.equal(a, b) for a, b in zip(head, src.head.parameters()))
    _step(src, env)
    src.sample(4)
    assert len(src.memory) == 16 and len(src.pool.bank) == 16
    assert src.draw().extras["targets"].shape == (16,)


def test_cmi_source_resumes_mid_round_exactly(env: SourceEnv) -> None:
    src = _source(env)
    for _ in range(2):
        _step(src, env)
    src.sample(4)
    _step(src, env)  # stopped between two synthesis steps
    twin = _source(env)
    twin.load_state_dict(copy.deepcopy(src.state_dict()))  # as through a checkpoint file
    a, b = _step(src, env), _step(twin, env)
    assert torch.equal(a["contrastive"], b["contrastive"])
    assert torch.equal(src.sample(8).x, twin.sample(8).x)
    assert torch.equal(src.memory.data[: len(src.memory)], twin.memory.data[: len(twin.memory)])

"""Synthesis-side loss terms against naive references (issue 3's pure functions)."""

from __future__ import annotations

import math

import pytest
import torch

from dfkd.losses import StepContext
from dfkd.losses.bn import blend_stats, bn_stat_distance, bn_stat_loss, channel_stats
from dfkd.losses.generator import (
    activation_loss,
    adversarial_loss,
    competition_loss,
    information_entropy_loss,
    js_div_adi,
    one_hot_loss,
)
from dfkd.losses.kd import js_div, kl_div, l1_logits
from dfkd.losses.priors import input_gradient_penalty, l2_prior, total_variation
from dfkd.losses.spectral import amplitude_spectrum, spectral_pair_loss, spectral_stat_loss
from dfkd.losses.synth_terms import stat_match_term
from dfkd.teachers.stats import TeacherStats


@pytest.fixture
def img() -> torch.Tensor:
    return torch.randn(3, 2, 5, 6, generator=torch.Generator().manual_seed(0))


def naive_tv(x: torch.Tensor, p: int) -> float:
    b, c, h, w = x.shape
    total = 0.0
    for dy, dx, x0 in ((1, 0, 0), (0, 1, 0), (1, 1, 0), (1, -1, 1)):
        vals = []
        for i in range(b):
            for k in range(c):
                for y in range(h - dy):
                    for xx in range(x0, w - abs(dx) + x0):
                        d = float(x[i, k, y + dy, xx + dx] - x[i, k, y, xx])
                        vals.append(abs(d) if p == 1 else d * d)
        total += sum(vals) / len(vals)
    return total


@pytest.mark.parametrize("p", [1, 2])
def test_total_variation_matches_reference(img: torch.Tensor, p: int) -> None:
    assert total_variation(img, p).item() == pytest.approx(naive_tv(img, p), rel=1e-5)
    assert total_variation(torch.ones(2, 1, 4, 4), p).item() == 0.0


def test_norm_forms_of_the_priors_match_reference(img: torch.Tensor) -> None:
    b, c, h, w = img.shape
    total = 0.0
    for dy, dx, x0 in ((1, 0, 0), (0, 1, 0), (1, 1, 0), (1, -1, 1)):
        sq = 0.0
        for i in range(b):
            for k in range(c):
                for y in range(h - dy):
                    for xx in range(x0, w - abs(dx) + x0):
                        sq += float(img[i, k, y + dy, xx + dx] - img[i, k, y, xx]) ** 2
        total += math.sqrt(sq)
    assert total_variation(img, reduction="norm").item() == pytest.approx(total, rel=1e-5)
    flat = math.sqrt(sum(v * v for v in img.flatten().tolist()))
    assert l2_prior(img, reduction="norm").item() == pytest.approx(flat, rel=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        l2_prior(img, reduction="sum")


def test_l2_prior_matches_reference(img: torch.Tensor) -> None:
    naive = sum(math.sqrt(sum(v * v for v in row)) for row in img.flatten(1).tolist()) / 3
    assert l2_prior(img).item() == pytest.approx(naive, rel=1e-5)


def test_channel_stats_match_batchnorm(img: torch.Tensor) -> None:
    bn = torch.nn.BatchNorm2d(2, momentum=1.0)  # running stats = this batch's stats
    bn.train()(img)
    mean, var = channel_stats(img)
    assert torch.allclose(mean, bn.running_mean, atol=1e-6)
    n = img.numel() / 2
    assert torch.allclose(var * n / (n - 1), bn.running_var, atol=1e-5)  # BN keeps unbiased


def test_bn_stat_distance_reference() -> None:
    m, v = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0])
    rm, rv = torch.tensor([1.0, 1.0]), torch.tensor([1.0, 4.0])
    assert bn_stat_distance(m, v, rm, rv, "l2").item() == pytest.approx(1.0 + 2.0)
    kl = [
        0.5 * (math.log(b / a) + (a + (x - y) ** 2) / b - 1)
        for x, a, y, b in ((0, 1, 1, 1), (1, 2, 1, 4))
    ]
    assert bn_stat_distance(m, v, rm, rv, "kl", eps=0).item() == pytest.approx(
        sum(kl) / 2, rel=1e-5
    )
    assert bn_stat_distance(rm, rv, rm, rv, "kl").item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="kind must be"):
        bn_stat_distance(m, v, rm, rv, "l3")


def test_bn_stat_loss_first_multiplier() -> None:
    a = (torch.zeros(2), torch.ones(2))
    b = (torch.ones(2), torch.ones(2))
    one = bn_stat_distance(*a, *b)
    assert bn_stat_loss([a, a], [b, b], first_multiplier=10).item() == pytest.approx(
        11 * one.item()
    )
    with pytest.raises(ValueError):
        bn_stat_loss([a], [b, b])


def test_generator_terms_reference() -> None:
    t = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    p = t.softmax(1)
    naive_oh = -(math.log(p[0, 0]) + math.log(p[1, 2])) / 2
    assert one_hot_loss(t).item() == pytest.approx(naive_oh, rel=1e-6)
    pbar = p.mean(0).tolist()
    assert information_entropy_loss(t).item() == pytest.approx(
        sum(q * math.log(q) for q in pbar), rel=1e-6
    )
    assert information_entropy_loss(torch.zeros(4, 5)).item() == pytest.approx(
        -math.log(5), rel=1e-6
    )
    f = torch.tensor([[1.0, -2.0], [0.5, 0.5]])
    assert activation_loss(f).item() == pytest.approx(-1.0)


def test_adversarial_and_competition_terms() -> None:
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    assert adversarial_loss(s, t, "l1").item() == pytest.approx(-l1_logits(s, t).item())
    assert adversarial_loss(s, t, "kl", T=2).item() == pytest.approx(-kl_div(s, t, 2).item())
    assert adversarial_loss(s, t, "js").item() == pytest.approx(-js_div(s, t).item())
    assert competition_loss(s, t, 3.0).item() == pytest.approx(1 - js_div(s, t, 3.0).item())
    assert competition_loss(t, t).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="criterion"):
        adversarial_loss(s, t, "l2")


def test_adi_form_of_js_matches_reference() -> None:
    g = torch.Generator().manual_seed(4)
    s, t = 3 * torch.randn(4, 5, generator=g), 3 * torch.randn(4, 5, generator=g)
    p, q = torch.softmax(s / 3, 1).tolist(), torch.softmax(t / 3, 1).tolist()
    clamp = lambda v: min(max(v, 0.01), 0.99)  # noqa: E731
    acc = 0.0
    for pi, qi in zip(p, q, strict=True):
        for a, b in zip(pi, qi, strict=True):
            m = clamp((a + b) / 2)
            acc += 0.5 * m * (math.log(m) - math.log(clamp(a)))
            acc += 0.5 * m * (math.log(m) - math.log(clamp(b)))
    assert js_div_adi(s, t, 3.0).item() == pytest.approx(acc / 20, rel=1e-5)
    assert competition_loss(s, t, 3.0, "adi").item() == pytest.approx(1 - acc / 20, rel=1e-5)
    with pytest.raises(ValueError, match="form"):
        competition_loss(s, t, form="x")


def naive_amplitude(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    out = torch.zeros(b, c, h, w // 2 + 1)
    for u in range(h):
        for v in range(w // 2 + 1):
            acc = torch.zeros(b, c, dtype=torch.complex64)
            for y in range(h):
                for xx in range(w):
                    ang = -2 * math.pi * (u * y / h + v * xx / w)
                    acc = acc + x[:, :, y, xx] * complex(math.cos(ang), math.sin(ang))
            out[:, :, u, v] = acc.abs() / math.sqrt(h * w)
    return out


def test_spectral_terms_reference(img: torch.Tensor) -> None:
    assert torch.allclose(amplitude_spectrum(img), naive_amplitude(img), atol=1e-4)
    other = img.roll(1, dims=3)  # a circular shift keeps every amplitude
    assert spectral_pair_loss(other, img).item() == pytest.approx(0.0, abs=1e-9)
    ref = naive_amplitude(img).mean(0)
    assert spectral_stat_loss(img, ref).item() == pytest.approx(0.0, abs=1e-9)
    naive = (naive_amplitude(img * 2) - naive_amplitude(img)).pow(2).mean().item()
    assert spectral_pair_loss(img * 2, img).item() == pytest.approx(naive, rel=1e-4)
    with pytest.raises(ValueError, match="adapter"):
        spectral_pair_loss(img[:, :1], img)


@pytest.mark.parametrize(
    "fn",
    [lambda x: total_variation(x, 1), lambda x: total_variation(x, 2), l2_prior,
     lambda x: amplitude_spectrum(x).sum()],
)  # fmt: skip
def test_priors_gradcheck(fn) -> None:
    x = torch.randn(2, 1, 4, 4, dtype=torch.double, generator=torch.Generator().manual_seed(3))
    assert torch.autograd.gradcheck(lambda z: fn(z), (x.requires_grad_(True),))


def test_input_gradient_penalty_closed_form() -> None:
    g = torch.Generator().manual_seed(4)
    w = torch.randn(3, 5, generator=g)
    x = torch.randn(4, 5, generator=g, requires_grad=True)
    y = x @ w.T  # dy_k/dx = w_k
    k = torch.tensor([0, 2, 1, 2])
    val = input_gradient_penalty(y.gather(1, k[:, None]).squeeze(1), x)
    assert val.item() == pytest.approx(w[k].pow(2).sum(1).mean().item(), rel=1e-5)
    quad = (x**2).sum(1)  # d/dx = 2x, so the penalty is 4·mean‖x‖²; its gradient flows to x
    pen = input_gradient_penalty(quad, x)
    assert pen.item() == pytest.approx(4 * x.detach().pow(2).sum(1).mean().item(), rel=1e-5)
    (gx,) = torch.autograd.grad(pen, x)
    assert torch.allclose(gx, 8 * x.detach() / 4, atol=1e-5)


def test_stat_match_auto_is_kl_on_a_statistics_file_and_l2_on_batchnorm() -> None:
    torch.manual_seed(0)
    out = torch.randn(8, 3, 4, 4) * 30 + 5  # a BN-free layer's large activations
    stats = TeacherStats(["f"], {"f": torch.zeros(3)}, {"f": torch.ones(3)})
    m, v = out.mean(dim=(0, 2, 3)), out.var(dim=(0, 2, 3), unbiased=False)
    ref_kl = (0.5 * (torch.log(1 / v) + (v + m**2) / 1 - 1)).mean()
    taps = {"stats": stats, "outputs": {"f": out}}
    file_ctx = StepContext("synth", out, torch.zeros(8, 10), taps=taps)
    auto = stat_match_term(file_ctx, kind="auto").item()
    assert auto == pytest.approx(ref_kl.item(), rel=1e-4)
    assert auto == pytest.approx(stat_match_term(file_ctx, kind="kl").item())
    # the same teacher with its activations ×10: the same KL, ×10-×100 the L2
    big = TeacherStats(["f"], {"f": torch.zeros(3)}, {"f": torch.full((3,), 100.0)})
    big_ctx = StepContext("synth", out, torch.zeros(8, 10),
                          taps={"stats": big, "outputs": {"f": out * 10}})  # fmt: skip
    assert stat_match_term(big_ctx, kind="auto").item() == pytest.approx(auto, rel=1e-4)
    assert stat_match_term(big_ctx, kind="l2").item() > 9 * stat_match_term(file_ctx, kind="l2")

    bn = {"bn": {"b": (m, v)}, "bn_refs": {"b": (torch.zeros(3), torch.ones(3))}}
    bn_ctx = StepContext("synth", out, torch.zeros(8, 10), taps=bn)
    l2 = (torch.linalg.vector_norm(m) + torch.linalg.vector_norm(v - 1)).item()
    assert stat_match_term(bn_ctx, kind="auto").item() == pytest.approx(l2, rel=1e-5)


def test_stat_match_momentum_matches_the_blend_of_batch_and_memory() -> None:
    """``momentum``: the term compares ``(1 − m)·batch + m·memory`` with the references, layer
    by layer (a naive transcription of the authors' hook); without a memory, the batch alone."""
    g = torch.Generator().manual_seed(1)
    batch = {p: (torch.randn(4, generator=g), torch.rand(4, generator=g)) for p in "ab"}
    refs = {p: (torch.randn(4, generator=g), torch.rand(4, generator=g)) for p in "ab"}
    memory = [(torch.randn(4, generator=g), torch.rand(4, generator=g)) for _ in "ab"]
    taps = {"bn": batch, "bn_refs": refs}
    naive = 0.0
    for (m, v), (hm, hv), (rm, rv) in zip(batch.values(), memory, refs.values()):
        naive += (torch.linalg.vector_norm(rv - (0.1 * v + 0.9 * hv))
                  + torch.linalg.vector_norm(rm - (0.1 * m + 0.9 * hm))).item()  # fmt: skip
    ctx = StepContext("synth", torch.zeros(2, 1), torch.zeros(2, 3),
                      taps={**taps, "stat_memory": memory})  # fmt: skip
    assert stat_match_term(ctx, momentum=0.9).item() == pytest.approx(naive, rel=1e-5)
    alone = StepContext("synth", torch.zeros(2, 1), torch.zeros(2, 3),
                        taps={**taps, "stat_memory": None})  # fmt: skip
    plain = StepContext("synth", torch.zeros(2, 1), torch.zeros(2, 3), taps=taps)
    assert stat_match_term(alone, momentum=0.9).item() == pytest.approx(
        stat_match_term(plain).item()
    )
    assert stat_match_term(ctx, momentum=0.0).item() == pytest.approx(stat_match_term(plain).item())
    with pytest.raises(ValueError, match="in memory"):
        blend_stats(list(batch.values()), memory[:1], 0.9)

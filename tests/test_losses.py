"""Each loss term against a naive per-sample reference, plus gradient checks."""

from __future__ import annotations

import math

import pytest
import torch

from dfkd.errors import ConfigError
from dfkd.losses import (
    TERMS,
    StepContext,
    cross_entropy,
    js_div,
    kl_div,
    l1_logits,
    rescale_logits,
    standardize_logits,
)


def _softmax(row: list[float]) -> list[float]:
    m = max(row)
    e = [math.exp(v - m) for v in row]
    return [v / sum(e) for v in e]


def naive_kl(s: torch.Tensor, t: torch.Tensor, T: float, w: torch.Tensor | None) -> float:
    per = []
    for si, ti in zip(s.tolist(), t.tolist()):
        ps = _softmax([v / T for v in si])
        pt = _softmax([v / T for v in ti])
        per.append(sum(a * (math.log(a) - math.log(b)) for a, b in zip(pt, ps)))
    ws = [1.0] * len(per) if w is None else w.tolist()
    return T * T * sum(a * b for a, b in zip(per, ws)) / sum(ws)


def naive_js(s: torch.Tensor, t: torch.Tensor, T: float) -> float:
    out = []
    for si, ti in zip(s.tolist(), t.tolist()):
        ps = _softmax([v / T for v in si])
        pt = _softmax([v / T for v in ti])
        m = [(a + b) / 2 for a, b in zip(ps, pt)]
        kl_pm = sum(a * math.log(a / c) for a, c in zip(ps, m))
        kl_tm = sum(a * math.log(a / c) for a, c in zip(pt, m))
        out.append(0.5 * kl_pm + 0.5 * kl_tm)
    return sum(out) / len(out)


@pytest.fixture
def logits() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 5, generator=g) * 3, torch.randn(6, 5, generator=g) * 3


@pytest.mark.parametrize("T", [1.0, 4.0, 20.0])
def test_kl_div_matches_reference(logits, T: float) -> None:
    s, t = logits
    assert kl_div(s, t, T).item() == pytest.approx(naive_kl(s, t, T, None), rel=1e-5)
    w = torch.tensor([1.0, 0.0, 0.5, 2.0, 1.0, 0.25])
    assert kl_div(s, t, T, w).item() == pytest.approx(naive_kl(s, t, T, w), rel=1e-5)
    assert kl_div(t, t, T).item() == pytest.approx(0.0, abs=1e-6)


def test_kl_div_matches_torch_batchmean(logits) -> None:
    s, t = logits
    ref = (
        torch.nn.functional.kl_div(
            torch.log_softmax(s / 4, 1), torch.softmax(t / 4, 1), reduction="batchmean"
        )
        * 16
    )
    assert kl_div(s, t, 4.0).item() == pytest.approx(ref.item(), rel=1e-5)


def test_l1_logits_matches_reference(logits) -> None:
    s, t = logits
    naive = (
        sum(abs(a - b) for rs, rt in zip(s.tolist(), t.tolist()) for a, b in zip(rs, rt))
        / s.numel()
    )
    assert l1_logits(s, t).item() == pytest.approx(naive, rel=1e-5)


@pytest.mark.parametrize("T", [1.0, 3.0])
def test_js_div_matches_reference_and_is_bounded(logits, T: float) -> None:
    s, t = logits
    v = js_div(s, t, T).item()
    assert v == pytest.approx(naive_js(s, t, T), rel=1e-5)
    assert 0 <= v <= math.log(2) + 1e-6
    assert js_div(s, t, T).item() == pytest.approx(js_div(t, s, T).item(), rel=1e-6)  # symmetric


def test_cross_entropy_matches_reference(logits) -> None:
    s, _ = logits
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    naive = -sum(math.log(_softmax(r)[c]) for r, c in zip(s.tolist(), y.tolist())) / 6
    assert cross_entropy(s, y).item() == pytest.approx(naive, rel=1e-5)


def test_zero_weights_give_zero_not_nan(logits) -> None:
    s, t = logits
    assert kl_div(s, t, 2.0, torch.zeros(6)).item() == 0.0


@pytest.mark.parametrize(
    "fn", [lambda s, t: kl_div(s, t, 2.0), l1_logits, lambda s, t: js_div(s, t, 2.0)]
)
def test_gradcheck(fn) -> None:
    g = torch.Generator().manual_seed(1)
    s = torch.randn(3, 4, dtype=torch.double, generator=g, requires_grad=True)
    t = torch.randn(3, 4, dtype=torch.double, generator=g) + 0.1
    assert torch.autograd.gradcheck(lambda x: fn(x, t), (s,))


def naive_standardize(z: torch.Tensor) -> list[list[float]]:
    out = []
    for row in z.tolist():
        mean = sum(row) / len(row)
        std = math.sqrt(sum((v - mean) ** 2 for v in row) / len(row))
        out.append([(v - mean) / (std + 1e-6) for v in row])
    return out


def test_standardize_logits_matches_reference(logits) -> None:
    s, _ = logits
    assert torch.allclose(standardize_logits(s), torch.tensor(naive_standardize(s)), atol=1e-5)
    five = 5 * torch.tensor(naive_standardize(s))
    assert torch.allclose(standardize_logits(s, 5.0), five, atol=1e-4)


@pytest.mark.parametrize("term", ["kd_kl", "kd_l1", "kd_js"])
def test_standardized_terms_ignore_the_teachers_logit_scale(logits, term) -> None:
    s, t = logits

    def value(teacher: torch.Tensor, standardize: float | None) -> float:
        ctx = StepContext("distill", torch.zeros(len(s), 1), teacher, s)
        return TERMS.get(term)(ctx, standardize=standardize).item()

    for scale, shift in [(5.0, 0.0), (0.2, 3.0)]:  # large logits; small and offset ones
        moved = t * scale + shift
        assert value(moved, 1.0) == pytest.approx(value(t, 1.0), rel=1e-4)
        assert value(moved, 5.0) == pytest.approx(value(t, 5.0), rel=1e-4)
        assert value(moved, None) != pytest.approx(value(t, None), rel=1e-2)
    zs, zt = (torch.tensor(naive_standardize(z)) for z in (s, t))
    ref = naive_kl(zs, zt, 4.0, None)
    if term == "kd_kl":
        assert value(t, 1.0) == pytest.approx(ref, rel=1e-4)
        assert value(t, 5.0) == pytest.approx(naive_kl(5 * zs, 5 * zt, 4.0, None), rel=1e-4)


def naive_rescale(z: torch.Tensor, std: float) -> list[list[float]]:
    rows = z.tolist()
    spreads = []
    for row in rows:
        mean = sum(row) / len(row)
        spreads.append(math.sqrt(sum((v - mean) ** 2 for v in row) / len(row)))
    factor = std / (sum(spreads) / len(spreads) + 1e-6)
    return [[v * factor for v in row] for row in rows]


def test_rescale_logits_matches_reference(logits) -> None:
    _, t = logits
    t = t.clone().requires_grad_(True)
    out = rescale_logits(t, 4.0)
    assert torch.allclose(out, torch.tensor(naive_rescale(t.detach(), 4.0)), atol=1e-5)
    out.sum().backward()  # the factor is a constant: d out / d t is that factor
    factor = float(out[0, 0].detach() / t[0, 0].detach())
    assert torch.allclose(t.grad, torch.full_like(t, factor), rtol=1e-5)


def test_kd_kl_teacher_std_keeps_relative_confidence_and_ignores_scale(logits) -> None:
    s, t = logits

    def value(teacher: torch.Tensor) -> float:
        ctx = StepContext("distill", torch.zeros(len(s), 1), teacher, s)
        return TERMS.get("kd_kl")(ctx, T=4.0, teacher_std=4.0).item()

    ref = naive_kl(s, torch.tensor(naive_rescale(t, 4.0)), 4.0, None)
    assert value(t) == pytest.approx(ref, rel=1e-4)
    assert value(t * 0.2 + 3.0) == pytest.approx(ref, rel=1e-4)  # small, offset logits
    sharp = t.clone()
    sharp[0] *= 3  # one sample more confident than the rest: it stays so
    spread = rescale_logits(sharp, 4.0).std(dim=1, unbiased=False)
    assert float(spread[0] / spread[1]) == pytest.approx(float(sharp[0].std() / sharp[1].std()))
    assert float(spread.mean()) == pytest.approx(4.0, rel=1e-5)
    with pytest.raises(ConfigError, match="at most one of standardize, teacher_std"):
        TERMS.get("kd_kl")(StepContext("distill", torch.zeros(len(s), 1), t, s),
                           standardize=1.0, teacher_std=4.0)  # fmt: skip


def test_kd_kl_min_teacher_std_only_sharpens(logits) -> None:
    s, t = logits  # mean per-sample std near 3

    def value(teacher: torch.Tensor, **kw: float) -> float:
        ctx = StepContext("distill", torch.zeros(len(s), 1), teacher, s)
        return TERMS.get("kd_kl")(ctx, T=4.0, **kw).item()

    soft = t * 0.1
    assert value(soft, min_teacher_std=2.0) == pytest.approx(
        naive_kl(s, torch.tensor(naive_rescale(soft, 2.0)), 4.0, None), rel=1e-4
    )
    assert value(t, min_teacher_std=2.0) == value(t)  # already sharper: untouched
    assert torch.equal(rescale_logits(t, 2.0, only_up=True), t)


def test_standardized_adversarial_term_ignores_the_teachers_logit_scale(logits) -> None:
    s, t = logits
    term = TERMS.get("adversarial")
    for criterion in ("l1", "kl", "js"):
        a = term(StepContext("synth", torch.zeros(len(s), 1), t, s), criterion=criterion,
                 standardize=5.0)  # fmt: skip
        b = term(StepContext("synth", torch.zeros(len(s), 1), t * 7 - 2, s), criterion=criterion,
                 standardize=5.0)  # fmt: skip
        assert a.item() == pytest.approx(b.item(), rel=1e-4)

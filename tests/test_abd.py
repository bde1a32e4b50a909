"""ABD's plug-ins (abd_sv, abd_sr): their losses against naive transcriptions, the implicit
hypergradient against explicit Jacobians, the shuffled teachers, and runs that compose with a
generator and a pixel method and resume bit-exactly."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import dfkd
from dfkd.errors import ConfigError
from dfkd.losses.abd import (
    implicit_hypergradient_surrogate,
    per_sample_kl,
    retrospection_inner,
    retrospection_outer,
    vaccine_loss,
)
from dfkd.plugins.abd import (
    SelfRetrospection,
    ShufflingVaccine,
    frozen_batchnorm_stats,
    shuffled_copy,
)


def _kl(p: list[float], q: list[float]) -> float:
    sp = [math.exp(v) / sum(math.exp(u) for u in p) for v in p]
    sq = [math.exp(v) / sum(math.exp(u) for u in q) for v in q]
    return sum(a * math.log(a / b) for a, b in zip(sp, sq, strict=True))


def test_vaccine_loss_against_a_naive_reference() -> None:
    t = torch.tensor([[3.0, 0.0, 0.0], [0.0, 2.0, 0.5], [1.0, 0.0, 4.0]])
    s = torch.tensor([[2.0, 1.0, 0.0], [1.5, 0.0, 0.0], [0.0, 0.5, 1.0]])  # agree on 0 and 2
    assert per_sample_kl(t, s).tolist() == pytest.approx([_kl(a, b) for a, b in
                                                          zip(t.tolist(), s.tolist())])  # fmt: skip
    expect = -(_kl(t[0].tolist(), s[0].tolist()) + _kl(t[2].tolist(), s[2].tolist())) / 2
    assert vaccine_loss(t, s).item() == pytest.approx(expect, rel=1e-5)
    assert vaccine_loss(t[1:2], s[1:2]).item() == 0.0  # no suspect: no push


def test_retrospection_losses_against_a_naive_reference() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, delta = torch.randn(5, 4), 0.3 * torch.randn(1, 4)
    stamped = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0]).view(5, 1)
    with torch.no_grad():
        clean, moved = model(x).tolist(), model(x + delta).tolist()
        part = model(x + delta * stamped).tolist()
    inner = -sum(_kl(c, m) for c, m in zip(clean, moved, strict=True)) / 5
    inner += 0.01 * sum(v * v for v in delta.flatten().tolist())
    assert retrospection_inner(model, x, delta, 0.01).item() == pytest.approx(inner, rel=1e-5)
    outer = sum(_kl(c, m) for c, m in zip(clean, part, strict=True)) / 5
    assert retrospection_outer(model, x, delta, stamped).item() == pytest.approx(outer, rel=1e-5)


def test_hypergradient_surrogate_against_explicit_jacobians() -> None:
    torch.manual_seed(1)
    theta = torch.randn(3, requires_grad=True)
    a = torch.randn(3, 3)
    delta0 = torch.randn(3)

    def inner(d: torch.Tensor) -> torch.Tensor:
        return (torch.tanh(a @ d) * theta).sum() + 0.5 * (d * d).sum() * theta.pow(2).sum()

    def outer(d: torch.Tensor) -> torch.Tensor:
        return (theta * torch.sin(d)).sum() + theta.pow(3).sum()

    lr, iters = 0.1, 4
    surrogate = implicit_hypergradient_surrogate(inner, outer, delta0, lr, iters)
    assert surrogate.item() == pytest.approx(outer(delta0).item())
    (got,) = torch.autograd.grad(surrogate, theta)

    def phi(d: torch.Tensor, th: torch.Tensor) -> torch.Tensor:
        g = torch.func.grad(lambda dd: (torch.tanh(a @ dd) * th).sum()
                            + 0.5 * (dd * dd).sum() * th.pow(2).sum())(d)  # fmt: skip
        return d - lr * g

    th = theta.detach()
    j_d = torch.autograd.functional.jacobian(lambda d: phi(d, th), delta0)  # ∂Φ/∂δ
    j_t = torch.autograd.functional.jacobian(lambda t: phi(delta0, t), th)  # ∂Φ/∂θ
    g_d = torch.cos(delta0) * th  # ∂outer/∂δ
    g_t = torch.sin(delta0) + 3 * th.pow(2)  # ∂outer/∂θ
    v = sum(torch.linalg.matrix_power(j_d.T, k) @ g_d for k in range(iters))
    assert torch.allclose(got, g_t + j_t.T @ v, atol=1e-5)


def test_shuffled_copy_permutes_the_inputs_of_the_last_layers() -> None:
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 8, 3), nn.Flatten())
    copy = shuffled_copy(net, 1, torch.Generator().manual_seed(0))
    assert torch.equal(copy[0].weight, net[0].weight)  # not among the last layer
    w, v = net[2].weight, copy[2].weight
    perm = [next(j for j in range(6) if torch.equal(v[:, i], w[:, j])) for i in range(6)]
    assert sorted(perm) == list(range(6)) and perm != list(range(6))
    mlp = shuffled_copy(nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 2)), 5,
                        torch.Generator().manual_seed(0))  # fmt: skip
    assert mlp[0].weight.shape == (4, 5)  # a model without convolutions: its linear layers


def test_frozen_batchnorm_stats_leave_running_statistics_alone() -> None:
    bn = nn.BatchNorm1d(3).train()
    bn(torch.randn(8, 3))
    before = (bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked))
    with frozen_batchnorm_stats(bn):
        out = bn(5 + torch.randn(8, 3))
    assert out.mean().abs() < 1e-5  # still normalised by the batch's own statistics
    after = (bn.running_mean, bn.running_var, int(bn.num_batches_tracked))
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
    assert before[2] == after[2] and bn.momentum == 0.1


class _Fabric:
    def broadcast(self, obj: Any, src: int = 0) -> Any:
        return obj


def test_vaccine_tail_check_redraws_then_switches_off(monkeypatch: pytest.MonkeyPatch) -> None:
    sv = ShufflingVaccine(test_samples=4, tries=3)
    sv._env = (nn.Identity(), _Fabric(), 0)
    sv._seen = [torch.zeros(4, 2)]
    monkeypatch.setattr(sv, "tail_share", lambda x: 0.0)  # no draw leaves a low tail
    logs = sv.round_end({"round": 0})
    assert int(sv.draws) == 3 and not bool(sv.active) and logs["active"] == 0.0
    ok = ShufflingVaccine(test_samples=4)
    ok._env, ok._seen = (nn.Identity(), _Fabric(), 0), [torch.zeros(4, 2)]
    monkeypatch.setattr(ok, "tail_share", lambda x: 0.5)
    ok.round_end({"round": 0})
    assert int(ok.draws) == 0 and bool(ok.active) and bool(ok.tested)


def test_abd_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="perturb"):
        SelfRetrospection(perturb="both")
    with pytest.raises(ConfigError, match="portion"):
        SelfRetrospection(portion=0.0)
    with pytest.raises(ConfigError, match="copies"):
        ShufflingVaccine(copies=0)


ABD = ["abd_sv", "abd_sr:start=0,every=2,inner_steps=2,hg_iters=2"]


@pytest.mark.parametrize("method", ["dfq", "deepinversion"])
def test_abd_composes_and_resumes_bit_exactly(method: str, teacher_dir: Path,
                                              tmp_path: Path) -> None:  # fmt: skip
    over = ["rounds=3", "kd_steps=4", "g_steps=2", "eval_every=3", "checkpoint_every=1"]
    kw = dict(student="lenet5_half", method=method, dataset="digits", progress=False,
              overrides=over, plugins=ABD)  # fmt: skip
    m = dfkd.distill(teacher_dir, out=tmp_path / "a", **kw)
    last = m["history"][-1]
    assert last["abd_sr/active"] == 1.0 and last["abd_sr/perturbation"] > 0
    assert 0 <= last["abd_sv/suspects"] <= 1 and last["abd_sv/active"] == 1.0
    assert any("retrospection" in k for k in m["loss_terms"])
    assert any("vaccine" in k for k in m["loss_terms"])
    dfkd.distill(teacher_dir, out=tmp_path / "b", stop_after_rounds=1, **kw)
    dfkd.distill(teacher_dir, out=tmp_path / "b", resume=True, **kw)
    wa = load_file(tmp_path / "a" / "student.safetensors")
    wb = load_file(tmp_path / "b" / "student.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_vaccine_needs_synthesis(teacher_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"abd_sv.*synthesis"):
        dfkd.distill(teacher_dir, "lenet5_half", "kd", "digits", plugins=["abd_sv"],
                     overrides=["rounds=1"], progress=False)  # fmt: skip


class _Mapped(nn.Module):
    """``model`` behind a fixed input map: the student a run with ``to_model`` trains."""

    def __init__(self, model: nn.Module, to_model: Any) -> None:
        super().__init__()
        self.model, self.to_model = model, to_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.to_model(x))


def test_retrospection_runs_the_student_on_the_networks_inputs() -> None:
    """With an imported teacher's normalisation the student must see what the loop shows it:
    the term equals the one of a student that applies the map itself, and differs from the
    term on the sources' inputs."""
    from dfkd.data import Data
    from dfkd.data.base import InputMap
    from dfkd.losses.terms import StepContext
    from dfkd.sources import SourceEnv

    source = Data.input_space("toy", (1, 4, 4), 3, (0.5,), (0.25,))
    model = Data.input_space("toy", (1, 4, 4), 3, (0.1,), (0.9,))
    to_model = InputMap(source, model)
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    student = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))
    x = torch.randn(8, 1, 4, 4)
    ctx = StepContext("distill", x, teacher(x).detach(), None)

    def term(student_module: nn.Module, mapping: Any) -> torch.Tensor:
        plugin = SelfRetrospection(start=0.0, inner_steps=3, inner_lr=1.0, hg_iters=2, portion=0.5)
        plugin.setup(SourceEnv(fabric=None, data=source, teacher=teacher, student=student_module,
                               batch_size=8, seed=0, rounds=4, to_model=mapping))  # fmt: skip
        return plugin.distill_terms(ctx)["retrospection"].detach()

    mapped = term(student, to_model)
    assert mapped > 1e-6  # a perturbation that moves the student
    assert torch.allclose(mapped, term(_Mapped(student, to_model), None), rtol=1e-5, atol=0)
    assert not torch.allclose(mapped, term(student, None), rtol=0.1, atol=0)

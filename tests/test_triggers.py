"""Trigger inversion (the audit's Neural Cleanse scan): its loss, stamp and anomaly index
against naive transcriptions, and the scan on toy teachers whose shortcut is known."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from dfkd.data import Data
from dfkd.errors import ConfigError
from dfkd.teachers.triggers import (
    ScanConfig,
    anomaly_index,
    inversion_loss,
    save_trigger_png,
    scan_triggers,
    stamp,
)


def test_inversion_loss_against_a_naive_reference() -> None:
    logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    mask = torch.rand(1, 1, 3, 3, generator=torch.Generator().manual_seed(1))
    ce = -sum(math.log(math.exp(r[2]) / sum(math.exp(v) for v in r)) for r in logits.tolist()) / 4
    l1 = sum(abs(v) for v in mask.flatten().tolist())
    assert inversion_loss(logits, 2, mask, 0.01).item() == pytest.approx(ce + 0.01 * l1, rel=1e-5)


def test_stamp_mixes_each_pixel_through_the_mask() -> None:
    p, pattern = torch.rand(2, 3, 4, 4), torch.rand(1, 3, 4, 4)
    mask = torch.rand(1, 1, 4, 4)
    out = stamp(p, mask, pattern)
    for n, c, i, j in [(0, 0, 0, 0), (1, 2, 3, 1), (0, 1, 2, 2)]:
        m = mask[0, 0, i, j]
        assert out[n, c, i, j] == pytest.approx(
            float((1 - m) * p[n, c, i, j] + m * pattern[0, c, i, j])
        )


def test_anomaly_index_against_a_naive_reference() -> None:
    norms = [40.0, 38.0, 45.0, 3.0, 41.0, 39.0, 44.0, 50.0, 36.0, 42.0]
    med = sorted(norms)[4:6]  # torch's median of an even count is the lower middle value
    median = med[0]
    dev = sorted(abs(n - median) for n in norms)
    mad = 1.4826 * dev[4]
    expect = [max(0.0, (median - n) / mad) for n in norms]
    got = anomaly_index(torch.tensor(norms, dtype=torch.float64)).tolist()
    assert got == pytest.approx(expect)
    assert got[3] > 2 and max(got[:3] + got[4:]) < 2
    floored = anomaly_index(torch.tensor([10.0, 10.0, 10.0, 9.5, 10.0]), floor=0.1).tolist()
    assert floored == pytest.approx([0, 0, 0, 0.5, 0])  # the MAD is 0: the spread is 1


class RegionTeacher(nn.Module):
    """Class k answers the mean brightness of its region, scaled: a clean teacher when every
    region has the same size, a backdoored one when a class's region is a small patch."""

    def __init__(self, regions: list[tuple[slice, slice]]) -> None:
        super().__init__()
        self.regions = regions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([20 * x[:, 0, r, c].mean((1, 2)) for r, c in self.regions], 1)


COLUMNS = [(slice(0, 8), slice(k, k + 1)) for k in range(10)]  # ten classes, one column each


def _space(classes: int) -> Data:
    return Data.input_space("toy", (1, 8, 10), classes, (0.0,), (1.0,))


def _probes() -> torch.Tensor:
    """Dim images whose columns all have the same distribution (every cyclic shift of four)."""
    base = 0.5 * torch.rand(4, 1, 8, 10, generator=torch.Generator().manual_seed(3))
    return torch.cat([base.roll(k, -1) for k in range(10)])


def test_scan_names_the_class_with_a_shortcut(tmp_path: Path) -> None:
    teacher = RegionTeacher([*COLUMNS, (slice(7, 8), slice(8, 10))])  # class 10: a 1×2 patch
    r = scan_triggers(teacher, _probes(), _space(11), ScanConfig(steps=200, batch_size=40))
    assert r["suspected_target"] == 10 == r["smallest_mask_class"]
    assert r["mask_l1"][10] < 0.5 * min(r["mask_l1"][:10])
    assert r["second_ratio"] < 0.5
    assert r["anomaly_index"][10] > 2 and all(a <= 2 for a in r["anomaly_index"][:10])
    mask = r["masks"][10]
    assert mask[7, 8:].mean() > 4 * mask[:7].mean()  # the mask sits on the patch
    save_trigger_png(tmp_path / "t.png", r)
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scan_flags_no_class_of_a_clean_teacher() -> None:
    r = scan_triggers(RegionTeacher(COLUMNS), _probes(), _space(10),
                      ScanConfig(steps=200, batch_size=40))  # fmt: skip
    assert r["suspected_target"] is None
    assert max(r["mask_l1"]) < 1.5 * min(r["mask_l1"])
    assert all(a <= 2 for a in r["anomaly_index"])


def test_scan_names_no_target_when_two_classes_are_equally_easy() -> None:
    """Two shortcut classes: each stands out from the median, but neither from the other (a
    class that is merely easy to reach, not a planted target)."""
    patches = [(slice(7, 8), slice(0, 2)), (slice(7, 8), slice(8, 10))]
    r = scan_triggers(RegionTeacher([*COLUMNS, *patches]), _probes(), _space(12),
                      ScanConfig(steps=200, batch_size=40))  # fmt: skip
    assert r["smallest_mask_class"] in (10, 11) and r["anomaly_index"][r["smallest_mask_class"]] > 2
    assert r["second_ratio"] > 0.7 and r["suspected_target"] is None


def test_scan_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="steps"):
        ScanConfig(steps=0)
    with pytest.raises(ConfigError, match="success"):
        ScanConfig(success=1.5)


def _plugin_env(teacher: nn.Module, student: nn.Module, classes: int) -> Any:
    from lightning_fabric import Fabric

    from dfkd.engine.invert import inverted_probes
    from dfkd.sources import SourceEnv

    fabric, space = Fabric(accelerator="cpu", devices=1), _space(classes)
    invert = partial(inverted_probes, teacher, space, fabric=fabric)
    return SourceEnv(fabric=fabric, data=space, teacher=teacher, student=student, batch_size=8,
                     seed=0, invert=invert)  # fmt: skip


def test_trigger_filter_finds_the_shortcut_and_uses_it() -> None:
    from dfkd.plugins.trigger_filter import TriggerFilter
    from dfkd.sources import Batch

    teacher = RegionTeacher([*COLUMNS, (slice(7, 8), slice(8, 10))])
    student = nn.Sequential(nn.Flatten(), nn.Linear(80, 11))
    plugin = TriggerFilter(mode="both", probes=40, probe_steps=20, scan_steps=200)
    plugin.setup(_plugin_env(teacher, student, 11))
    assert plugin.target == 10 and plugin.index > 2
    probes = _probes()
    clean = probes[teacher(probes).argmax(1) != 10][:8]  # images whose answer is a column
    carried = clean.clone()
    carried[:4, :, 7, 8:] = 1.0  # the shortcut: the teacher answers 10
    batch = Batch(carried, teacher_logits=teacher(carried))
    picked = plugin.select(batch)
    assert picked.weight is not None
    assert picked.weight[:4].eq(0).all() and picked.weight[4:].eq(1).all()
    from dfkd.losses.terms import StepContext

    ctx = StepContext("distill", clean, teacher(clean), student(clean))
    (term,) = plugin.distill_terms(ctx).values()
    term.backward()
    assert term > 0 and student[1].weight.grad is not None
    logs = plugin.round_end({"round": 0})
    assert logs["target"] == 10 and logs["filtered"] == 0.5


def test_trigger_filter_leaves_a_clean_teacher_alone() -> None:
    from dfkd.plugins.trigger_filter import TriggerFilter
    from dfkd.sources import Batch

    teacher = RegionTeacher(COLUMNS)
    plugin = TriggerFilter(mode="both", probes=40, probe_steps=20, scan_steps=200)
    plugin.setup(_plugin_env(teacher, nn.Linear(80, 10), 10))
    x = _probes()[:8]
    batch = Batch(x, teacher_logits=teacher(x))
    assert plugin.target is None and plugin.select(batch) is batch
    assert plugin.round_end({"round": 0})["target"] == -1


def _shortcut_plugin(**options: Any) -> Any:
    """``trigger_filter`` set up on the toy teacher whose class 10 is a 1×2 patch."""
    from dfkd.plugins.trigger_filter import TriggerFilter

    teacher = RegionTeacher([*COLUMNS, (slice(7, 8), slice(8, 10))])
    student = nn.Sequential(nn.Flatten(), nn.Linear(80, 11))
    plugin = TriggerFilter(probes=40, probe_steps=20, scan_steps=200, **options)
    plugin.setup(_plugin_env(teacher, student, 11))
    return plugin, teacher, student


def test_trigger_filter_dilate_erases_a_wider_region_against_a_naive_reference() -> None:
    plugin, _, _ = _shortcut_plugin(mode="filter", dilate=1)
    plugin.mask.zero_()[3, 4] = 1.0  # one recovered pixel: the 3×3 block around it is erased
    x = torch.rand(2, 1, 8, 10, generator=torch.Generator().manual_seed(0))
    out = plugin.erase(x)
    for i in range(8):
        for j in range(10):
            inside = abs(i - 3) <= 1 and abs(j - 4) <= 1
            expect = torch.zeros(2) if inside else x[:, 0, i, j]  # the toy's mean pixel is 0
            assert torch.allclose(out[:, 0, i, j], expect)
    with pytest.raises(ConfigError, match="dilate"):
        type(plugin)(dilate=-1)


def test_trigger_filter_rescan_inverts_again_from_the_samples_it_is_shown() -> None:
    """Idle until a round's samples were seen; then the target's trigger comes from them, acts,
    and is checkpointed with the plug-in's state."""
    from dfkd.losses.terms import StepContext
    from dfkd.sources import Batch

    plugin, teacher, student = _shortcut_plugin(mode="both", rescan=True, dilate=1)
    assert plugin.target == 10 and not plugin.acting
    plugin.mask.fill_(0.5)  # what the set-up scan found is replaced by the rescan
    assert plugin.round_end({"round": 0})["rescanned"] == 0  # a round with no samples: pending
    probes = _probes()
    x = probes[teacher(probes).argmax(1) != 10][:16]  # the samples shown in the round
    batch = Batch(x, teacher_logits=teacher(x))
    assert plugin.select(batch) is batch  # idle: no weights
    assert plugin.distill_terms(StepContext("distill", x, teacher(x), student(x))) == {}
    assert plugin.round_end({"round": 1})["rescanned"] == 1 and plugin.acting
    mask = plugin.mask
    assert mask[7, 8:].mean() > 4 * mask[:7].mean()  # the mask sits on the patch again
    carried = x[:8].clone()
    carried[:4, :, 7, 8:] = 1.0  # the shortcut: the teacher answers 10
    weight = plugin.select(Batch(carried, teacher_logits=teacher(carried))).weight
    assert weight is not None and weight[:4].eq(0).all() and weight[4:].eq(1).all()
    resumed, _, _ = _shortcut_plugin(mode="both", rescan=True, dilate=1)
    resumed.load_state_dict(plugin.state_dict())
    assert resumed.acting and torch.equal(resumed.mask, plugin.mask)


def test_trigger_filter_can_leave_flagged_samples_out_of_the_relabelling() -> None:
    """``relabel_flagged: false``: the relabel term averages the naive KL over the samples the
    filter kept (weight 1) only."""
    from dfkd.losses.terms import StepContext

    plugin, teacher, student = _shortcut_plugin(mode="both", portion=1.0, relabel_flagged=False)
    x = _probes()[:6]
    weight = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    ctx = StepContext("distill", x, teacher(x), student(x), weight=weight)
    (term,) = plugin.distill_terms(ctx).values()
    p_t = torch.softmax(teacher(x), 1)
    log_p_s = torch.log_softmax(student(plugin.stamp(x)), 1)
    kept = [i for i in range(6) if weight[i] == 1]
    naive = sum((p_t[i] * (p_t[i].log() - log_p_s[i])).sum() for i in kept) / len(kept)
    assert torch.allclose(term, naive, atol=1e-5)
    everyone, _, _ = _shortcut_plugin(mode="both", portion=1.0)
    (all_term,) = everyone.distill_terms(ctx).values()
    assert not torch.allclose(all_term, naive, atol=1e-5)  # the default relabels every sample


def test_trigger_filter_hard_stamp_is_opaque_on_the_mask_s_strong_region() -> None:
    plugin, _, _ = _shortcut_plugin(mode="relabel", hard_stamp=True)
    plugin.mask.zero_()[2, 3] = 0.8
    plugin.mask[2, 4] = 0.3  # under half the largest value: left as it is
    plugin.pattern.fill_(0.25)
    x = torch.rand(2, 1, 8, 10, generator=torch.Generator().manual_seed(0))
    out = plugin.stamp(x)
    expect = x.clone()
    expect[:, 0, 2, 3] = 0.25  # the toy's pixels are its normalised values
    assert torch.allclose(out, expect)


def test_trigger_filter_rescan_resumes_bit_exactly(
    teacher_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose rescanned trigger was checkpointed resumes to the same student. The digits
    teacher is clean, so the scan is told to suspect its smallest-mask class."""
    from safetensors.torch import load_file

    import dfkd
    from dfkd.teachers import triggers

    real = triggers.scan_triggers

    def suspecting(*args: Any, **kwargs: Any) -> dict[str, Any]:
        scan = real(*args, **kwargs)
        return {**scan, "suspected_target": scan["smallest_mask_class"]}

    monkeypatch.setattr(triggers, "scan_triggers", suspecting)
    spec = "trigger_filter:mode=both,rescan=true,dilate=1,probes=32,probe_steps=5,scan_steps=20"
    over = ["rounds=3", "kd_steps=4", "g_steps=2", "eval_every=3", "checkpoint_every=1"]
    kw = dict(student="lenet5_half", method="dfq", dataset="digits", progress=False,
              overrides=over, plugins=[spec])  # fmt: skip
    m = dfkd.distill(teacher_dir, out=tmp_path / "a", **kw)
    assert m["history"][-1]["trigger_filter/rescanned"] == 1.0
    dfkd.distill(teacher_dir, out=tmp_path / "b", stop_after_rounds=2, **kw)
    dfkd.distill(teacher_dir, out=tmp_path / "b", resume=True, **kw)
    wa = load_file(tmp_path / "a" / "student.safetensors")
    wb = load_file(tmp_path / "b" / "student.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_trigger_filter_relabels_on_the_networks_inputs() -> None:
    """The relabelling term runs the student on the networks' normalisation (an imported
    teacher's), as the loop's own student steps do."""
    from lightning_fabric import Fabric

    from dfkd.data.base import InputMap
    from dfkd.engine.invert import inverted_probes
    from dfkd.losses.terms import StepContext
    from dfkd.plugins.trigger_filter import TriggerFilter
    from dfkd.sources import SourceEnv

    teacher = RegionTeacher([*COLUMNS, (slice(7, 8), slice(8, 10))])
    space = _space(11)
    to_model = InputMap(space, Data.input_space("toy", (1, 8, 10), 11, (0.3,), (0.5,)))
    torch.manual_seed(0)
    student = nn.Sequential(nn.Flatten(), nn.Linear(80, 11))
    fabric = Fabric(accelerator="cpu", devices=1)

    def term(student_module: Any, mapping: Any) -> torch.Tensor:
        plugin = TriggerFilter(mode="relabel", probes=40, probe_steps=20, scan_steps=200)
        invert = partial(inverted_probes, teacher, space, fabric=fabric)
        plugin.setup(SourceEnv(fabric=fabric, data=space, teacher=teacher, student=student_module,
                               batch_size=8, seed=0, to_model=mapping, invert=invert))  # fmt: skip
        assert plugin.target == 10
        x = _probes()[:8]
        (value,) = plugin.distill_terms(StepContext("distill", x, teacher(x), None)).values()
        return value.detach()

    mapped = term(student, to_model)
    assert torch.allclose(mapped, term(lambda z: student(to_model(z)), None), rtol=1e-5, atol=0)
    assert not torch.allclose(mapped, term(student, None), rtol=0.1, atol=0)

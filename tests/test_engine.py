"""The loop: resume equivalence, the synthesis phase, the plug-in seam, up-front checks, outputs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import dfkd
from dfkd.errors import ConfigError, DfkdError
from dfkd.io.files import load_tensors
from dfkd.losses import TERMS, StepContext, l1_logits
from dfkd.plugins import PLUGINS, Plugin
from dfkd.sources import SOURCES, Batch, Source, SourceEnv


def run_kd(teacher: Path, **kwargs: Any) -> dict[str, Any]:
    """Classical KD of ``teacher`` into lenet5_half on digits, without a progress bar."""
    kwargs.setdefault("progress", False)
    return dfkd.distill(teacher, "lenet5_half", "kd", "digits", **kwargs)


FAST = ["rounds=6", "kd_steps=4", "batch_size=32", "eval_every=2", "checkpoint_every=2"]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_tensors(out / "student.safetensors")[0]


def _same_run(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    ha = (a / "history.csv").read_text().splitlines()
    hb = (b / "history.csv").read_text().splitlines()
    assert len(ha) == len(hb)


def test_kd_resume_matches_unbroken_run(tmp_path: Path, teacher_dir: Path) -> None:
    full = run_kd(
        teacher_dir,
        out=tmp_path / "full",
        overrides=FAST,
    )
    part = run_kd(
        teacher_dir,
        out=tmp_path / "part",
        overrides=FAST,
        stop_after_rounds=3,
    )
    assert not part["completed"] and not (tmp_path / "part" / "metrics.json").exists()
    done = run_kd(
        teacher_dir,
        out=tmp_path / "part",
        overrides=FAST,
        resume=True,
    )
    assert done["completed"] and done["steps"] == full["steps"] == 24
    assert done["student_accuracy"] == full["student_accuracy"]
    assert done["synthetic_class_histogram"] == full["synthetic_class_histogram"]
    _same_run(tmp_path / "full", tmp_path / "part")


# --- a synthesising source and an adversarial term, defined only for these tests -------------


class PixelNoise(Source):
    """Learnable pixels plus seeded noise: exercises draw/update/sample and RNG state."""

    synthesizes = True

    def __init__(self, n: int = 32) -> None:
        self.n = n

    def setup(self, env: SourceEnv) -> None:
        self.gen = torch.Generator().manual_seed(env.seed)
        self.x = torch.randn((self.n, *env.data.input_shape), generator=self.gen).requires_grad_(
            True
        )
        self.opt = torch.optim.Adam([self.x], lr=0.05)
        self.fabric = env.fabric
        self.updates = 0

    def draw(self) -> Batch:
        return Batch(x=self.x + 0.1 * torch.randn(self.x.shape, generator=self.gen))

    def update(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad()
        self.fabric.backward(loss)
        self.opt.step()
        self.updates += 1

    def sample(self, batch_size: int) -> Batch:
        idx = torch.randint(0, self.n, (batch_size,), generator=self.gen)
        return Batch(x=self.x.detach()[idx])

    def state_dict(self) -> dict[str, Any]:
        return {"x": self.x.detach(), "opt": self.opt.state_dict(), "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.x.copy_(state["x"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])


def neg_l1(ctx: StepContext) -> torch.Tensor:
    """Adversarial: maximise the student–teacher discrepancy."""
    return -l1_logits(ctx.student_logits, ctx.teacher_logits)


@pytest.fixture
def synth_parts() -> Iterator[None]:
    SOURCES.register("test_pixels", PixelNoise)
    TERMS.register("test_neg_l1", neg_l1, phase="synth", needs=("student",))
    yield
    SOURCES.unregister("test_pixels")
    TERMS.unregister("test_neg_l1")


SYNTH = [
    "source.name=test_pixels",
    "g_steps=2",
    "synth_terms={test_neg_l1: {weight: 1.0}}",
    "distill_terms={kd_l1: {weight: 1.0}}",
    "distill_terms.kd_kl.weight=0",
    "distill_terms.ce.weight=0",
    *FAST,
]


def test_synthesis_phase_runs_and_resumes(
    tmp_path: Path, teacher_dir: Path, synth_parts: None
) -> None:
    full = run_kd(
        teacher_dir,
        out=tmp_path / "a",
        overrides=SYNTH,
    )
    assert full["synthesis_s"] > 0 and "synth/test_neg_l1" in full["loss_terms"]
    assert "kd_l1" in full["loss_terms"] and "ce" not in full["loss_terms"]
    run_kd(
        teacher_dir,
        out=tmp_path / "b",
        overrides=SYNTH,
        stop_after_rounds=1,
    )
    run_kd(
        teacher_dir,
        out=tmp_path / "b",
        overrides=SYNTH,
        resume=True,
    )
    _same_run(tmp_path / "a", tmp_path / "b")


# --- the plug-in seam ---------------------------------------------------------------------------


class Probe(Plugin):
    """Keeps the first half of each batch, adds a term, shifts logits, counts calls."""

    def __init__(self, factor: float = 0.5) -> None:
        super().__init__()
        self.factor = factor
        self.calls = {"select": 0, "observe": 0, "adjust": 0, "terms": 0, "round_end": 0}
        self.seen_sizes: list[int] = []

    def select(self, batch: Batch) -> Batch:
        self.calls["select"] += 1
        assert batch.teacher_logits is not None
        keep = torch.arange(len(batch)) < int(len(batch) * self.factor)
        return batch.subset(keep).replace(weight=torch.ones(int(keep.sum())))

    def observe(self, batch: Batch) -> None:
        self.calls["observe"] += 1
        self.seen_sizes.append(len(batch))

    def adjust_logits(self, batch: Batch, logits: torch.Tensor) -> torch.Tensor:
        self.calls["adjust"] += 1
        self.seen_sizes.append(len(logits))
        return logits + 0.0

    def distill_terms(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        self.calls["terms"] += 1
        return {"penalty": 0.01 * ctx.student_logits.pow(2).mean()}

    def round_end(self, info: dict[str, Any]) -> dict[str, float]:
        self.calls["round_end"] += 1
        return {"kept": self.factor}


class Picky(Plugin):
    def check(self, method: Any, source: Source) -> str | None:
        return "needs a generator source" if not source.synthesizes else None


@pytest.fixture
def probe_plugins() -> Iterator[list[Probe]]:
    made: list[Probe] = []

    def factory(factor: float = 0.5) -> Probe:
        made.append(Probe(factor))
        return made[-1]

    PLUGINS.register("test_probe", factory)
    PLUGINS.register("test_picky", Picky)
    yield made
    PLUGINS.unregister("test_probe")
    PLUGINS.unregister("test_picky")


def test_plugin_hooks_are_called_and_their_values_used(
    tmp_path: Path, teacher_dir: Path, probe_plugins
) -> None:
    m = run_kd(
        teacher_dir,
        out=tmp_path / "p",
        overrides=FAST,
        plugins=["test_probe:factor=0.5"],
    )
    assert len(probe_plugins) == 1  # the parts are assembled once
    probe = probe_plugins[-1]
    assert probe.calls == {"select": 24, "observe": 24, "adjust": 24, "terms": 24, "round_end": 6}
    assert set(probe.seen_sizes) == {16}  # half of batch 32 reached the student (and observe)
    assert "test_probe/penalty" in m["loss_terms"]
    assert "test_probe/kept" in (tmp_path / "p" / "history.csv").read_text().splitlines()[0]


def test_plugin_that_does_not_fit_fails_before_any_output(
    tmp_path: Path, teacher_dir: Path, probe_plugins
) -> None:
    with pytest.raises(
        ConfigError, match="plug-in 'test_picky' does not fit method 'kd': needs a generator"
    ):
        run_kd(
            teacher_dir,
            out=tmp_path / "x",
            overrides=FAST,
            plugins=["test_picky"],
        )
    assert not (tmp_path / "x").exists()
    with pytest.raises(ConfigError, match="takes no option 'bogus'"):
        run_kd(
            teacher_dir,
            plugins=["test_probe:bogus=1"],
        )
    with pytest.raises(ConfigError, match="unknown plugin 'test_prob'; did you mean 'test_probe'"):
        run_kd(teacher_dir, plugins=["test_prob"])


@pytest.mark.parametrize(
    ("overrides", "msg"),
    [
        (["g_steps=1"], "does not synthesise"),
        (["distill_terms.kd_kl.weight=0", "distill_terms.ce.weight=0"], "distill_terms is empty"),
        (["distill_terms.kd_kl.tau=3"], "takes no option 'tau'"),
        (["distill_terms.kd_kll={weight: 1}"], "did you mean 'kd_kl'"),
        (["optimizer.name=sgdd"], "did you mean 'sgd'"),
        (["optimizer.schedule=cosin"], "did you mean 'cosine'"),
        (["source.args.split=val"], "split must be 'train' or 'test'"),
    ],
)
def test_parts_that_do_not_fit_are_refused_up_front(teacher_dir: Path, overrides, msg) -> None:
    with pytest.raises(ConfigError, match=msg):
        run_kd(teacher_dir, overrides=overrides)


def test_term_needing_labels_on_unlabelled_source(teacher_dir: Path, synth_parts: None) -> None:
    with pytest.raises(ConfigError, match="term 'ce' needs labels"):
        run_kd(
            teacher_dir,
            overrides=["source.name=test_pixels", "g_steps=1", "synth_terms={test_neg_l1: {}}"],
        )
    with pytest.raises(ConfigError, match="is a synth term"):
        run_kd(
            teacher_dir,
            overrides=["distill_terms={test_neg_l1: {}}"],
        )


def test_outputs_and_refusal_to_clobber(tmp_path: Path, teacher_dir: Path) -> None:
    out = tmp_path / "run"
    m = run_kd(teacher_dir, out=out, overrides=FAST)
    hist = m["synthetic_class_histogram"]
    assert len(hist) == 10 and abs(sum(hist) - 1) < 1e-6 and min(hist) > 0.05  # real digits
    assert m["threads"] == torch.get_num_threads()
    if "OMP_NUM_THREADS" not in os.environ:  # by default a run uses every core (up to 4 here)
        assert m["threads"] >= min(4, len(os.sched_getaffinity(0)))
    assert (out / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for f in (
        "config.yaml",
        "metrics.json",
        "history.csv",
        "student.safetensors",
        "student.json",
        "checkpoint.safetensors",
    ):
        assert (out / f).is_file(), f
    saved = (out / "metrics.json").read_text()
    import json

    metrics = json.loads(saved)
    for k in (
        "method",
        "teacher_accuracy",
        "student_accuracy",
        "agreement",
        "steps",
        "wall_s",
        "loss_terms",
    ):
        assert k in metrics
    assert metrics["student_accuracy"] == m["student_accuracy"]
    assert set(metrics["loss_terms"]) >= {"kd_kl", "ce", "loss"}
    hist = (out / "history.csv").read_text().splitlines()
    assert hist[0].startswith("round,step,student_accuracy,agreement") and len(hist) == 1 + 3
    # the final figure is the last evaluation, not the best one
    last = hist[-1].split(",")
    assert float(last[2]) == pytest.approx(metrics["student_accuracy"], abs=1e-5)

    with pytest.raises(DfkdError, match="already holds a run"):
        run_kd(teacher_dir, out=out, overrides=FAST)
    with pytest.raises(ConfigError, match="unknown model 'lenet6'"):
        dfkd.distill(teacher_dir, "lenet6", "kd", "digits", out=out, overrides=FAST, overwrite=True)
    assert (out / "metrics.json").read_text() == saved  # bad input destroyed nothing
    with pytest.raises(DfkdError, match="config differs at 'seed'"):
        run_kd(teacher_dir, out=out, overrides=FAST, seed=1, resume=True)
    run_kd(
        teacher_dir,
        out=out,
        overrides=FAST,
        seed=1,
        overwrite=True,
    )
    assert "seed: 1" in (out / "config.yaml").read_text()


def test_student_card_reloads_and_evaluates(tmp_path: Path, teacher_dir: Path) -> None:
    out = tmp_path / "run"
    m = run_kd(teacher_dir, out=out, overrides=FAST)
    r = dfkd.evaluate(out / "student.json", "digits", teacher=teacher_dir)
    assert r["accuracy"] == pytest.approx(m["student_accuracy"])
    assert r["agreement"] == pytest.approx(m["agreement"])


def test_python_modules_as_teacher_and_student(teacher_dir: Path) -> None:
    teacher, _ = dfkd.load_model(teacher_dir)
    student = dfkd.create_model("mlp", num_classes=10, in_channels=1, image_size=8, hidden=(32,))
    m = dfkd.distill(teacher, student, "kd", "digits", overrides=FAST)
    assert m["student"] is student and m["student_accuracy"] > 0.5


def test_a_warm_up_with_nothing_to_learn_is_a_one_line_error(teacher_dir: Path) -> None:
    """DFAD's only synthesis term needs the student: a warm-up round has nothing to train."""
    with pytest.raises(ConfigError, match="set warmup_rounds=0") as e:
        dfkd.distill(teacher_dir, "lenet5_half", "dfad", "digits", progress=False,
                     overrides=["rounds=3", "warmup_rounds=1"])  # fmt: skip
    assert "\n" not in str(e.value)


def test_a_result_is_handed_back_whole_and_its_folder_removed() -> None:
    """Rank 0's metrics (NaN, nesting) and weights cross to the launcher through files."""
    from dfkd.engine.handoff import hand_back, handoff_folder, take_back

    metrics = {"acc": 0.5, "recall": [float("nan"), 1.0], "budget": {"rounds": 3}}
    weights = {"w": torch.arange(40000, dtype=torch.float32).view(200, 200)}  # 160 KB
    with handoff_folder() as folder:
        hand_back(folder, 0, metrics, weights)
        m, w = take_back(folder, 0)
        with pytest.raises(DfkdError, match="run result"):
            take_back(folder, 1)  # another rank's result is not mistaken for this one's
    assert not folder.exists()
    assert m["budget"] == {"rounds": 3} and m["acc"] == 0.5 and m["recall"][1] == 1.0
    assert m["recall"][0] != m["recall"][0]  # NaN survives
    assert torch.equal(w["w"], weights["w"])

"""The CLI end to end on digits, and every kind of bad input: a clear one-line error, exit code 2,
nothing destroyed."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
import yaml

import dfkd
from dfkd.cli import main
from dfkd.data.base import make_data
from dfkd.io.files import load_tensors


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_end_to_end(tmp_path: Path, capsys) -> None:
    train = "teacher train --dataset digits --model lenet5 --epochs 5 --batch-size 64 --quiet"
    code, out, _ = run_cli([*train.split(), "--out", tmp_path / "t"], capsys)
    assert code == 0 and "test accuracy" in out
    card = json.loads((tmp_path / "t" / "teacher.json").read_text())
    assert card["architecture"]["name"] == "lenet5" and card["input_shape"] == [1, 8, 8]
    assert card["num_classes"] == 10 and "normalization" in card and card["test_accuracy"] > 0.8
    assert card["command"].startswith("dfkd teacher train")

    distill = "distill kd --student lenet5_half --dataset digits --set rounds=4 --set kd_steps=5"
    code, out, _ = run_cli(
        [*distill.split(), "--quiet", "--teacher", tmp_path / "t", "--out", tmp_path / "s"], capsys
    )
    assert code == 0
    for key in ("teacher accuracy", "student accuracy", "agreement", "time", "outputs"):
        assert key in out
    metrics = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert metrics["steps"] == 20 and metrics["method"] == "kd"

    student = ["eval", "--model", tmp_path / "s" / "student.json", "--dataset", "digits"]
    code, out, _ = run_cli([*student, "--teacher", tmp_path / "t", "--json"], capsys)
    r = json.loads(out)
    assert code == 0 and r["accuracy"] == pytest.approx(metrics["student_accuracy"])

    weights = tmp_path / "t" / "teacher.safetensors"
    for model in ("lenet5", "dfkd.models.lenet:lenet5"):  # a registered name, a factory
        eval_ = ["eval", "--model", model, "--weights", weights, "--dataset", "digits", "--json"]
        code, out, _ = run_cli(eval_, capsys)
        assert code == 0 and json.loads(out)["accuracy"] == pytest.approx(card["test_accuracy"])
    code, out, _ = run_cli(
        ["distill", "kd", "--teacher", "dfkd.models.lenet:lenet5", "--teacher-weights", weights,
         "--dataset", "digits", "--out", tmp_path / "f", "--set", "rounds=1", "--set",
         "kd_steps=2", "--quiet"],
        capsys,
    )  # fmt: skip
    assert code == 0
    saved = yaml.safe_load((tmp_path / "f" / "config.yaml").read_text())
    assert saved["teacher"] == "dfkd.models.lenet:lenet5" and saved["rounds"] == 1

    code, out, _ = run_cli(["list"], capsys)
    assert code == 0
    for word in ("methods:", "models:", "datasets:", "plugins:", "kd", "lenet5_half", "mnist10k"):
        assert word in out
    code, out, _ = run_cli(["list", "models", "lenet*"], capsys)
    assert "lenet5_half" in out and "resnet8" not in out


def test_cli_resume_continues_a_stopped_run(tmp_path: Path, teacher_dir: Path, capsys) -> None:
    args = [
        "distill",
        "kd",
        "--teacher",
        teacher_dir,
        "--student",
        "lenet5_half",
        "--dataset",
        "digits",
        "--out",
        tmp_path / "r",
        "--set",
        "rounds=4",
        "--set",
        "kd_steps=3",
        "--quiet",
    ]
    code, out, _ = run_cli([*args, "--stop-after", "2"], capsys)
    assert code == 0 and "continue with --resume" in out
    code, out, _ = run_cli([*args, "--resume"], capsys)
    assert code == 0 and json.loads((tmp_path / "r" / "metrics.json").read_text())["steps"] == 12


def test_cli_resume_needs_only_the_folder(tmp_path: Path, teacher_dir: Path, capsys) -> None:
    """The saved config.yaml alone continues a run; a contradicting flag names the difference."""
    first = ["distill", "dfq", "--teacher", teacher_dir, "--dataset", "digits", "--out",
             tmp_path / "r", "--set", "rounds=4", "--set", "kd_steps=3", "--plugin",
             "confidence_weighting:power=2", "--quiet"]  # fmt: skip
    code, _, _ = run_cli([*first, "--stop-after", "2"], capsys)
    assert code == 0 and not (tmp_path / "r" / "metrics.json").exists()
    code, _, err = run_cli(["distill", "--resume", "--out", tmp_path / "r", "--set", "rounds=5"],
                           capsys)  # fmt: skip
    assert code == 2 and "'rounds' (saved 4, now 5)" in err and len(err.splitlines()) == 1
    code, _, err = run_cli(["distill", "dfad", "--resume", "--out", tmp_path / "r"], capsys)
    assert code == 2 and "'method' (saved 'dfq', now 'dfad')" in err
    code, _, _ = run_cli(["distill", "--resume", "--out", tmp_path / "r", "--quiet"], capsys)
    assert code == 0
    resumed = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert resumed["steps"] == 12 and resumed["method"] == "dfq"
    # the unbroken run, re-created from the saved config.yaml alone, gives the same student
    code, _, _ = run_cli(["distill", "--config", tmp_path / "r" / "config.yaml", "--out",
                          tmp_path / "again", "--quiet"], capsys)  # fmt: skip
    assert code == 0  # the config names its method: no automatic choice
    assert "method_choice" not in json.loads((tmp_path / "again" / "metrics.json").read_text())
    a = load_tensors(tmp_path / "r" / "student.safetensors")[0]
    b = load_tensors(tmp_path / "again" / "student.safetensors")[0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    saved = (tmp_path / "r" / "config.yaml").read_text()
    assert "confidence_weighting" in saved and "power: 2" in saved


def test_flags_are_config_layers(teacher_dir: Path) -> None:
    cfg = dfkd.resolve_config("ta_dfkd", "digits", plugins=["gmm_selection:threshold=0.6", "kdci"])
    assert [p.name for p in cfg.plugins] == ["gmm_selection", "kdci"]  # merged, then appended
    assert cfg.plugins[0].args == {"threshold": 0.6}
    cfg = dfkd.resolve_config("substitute", "digits", substitute="fashion-mnist")
    assert cfg.source.args["dataset"] == "fashion-mnist"
    with pytest.raises(dfkd.ConfigError, match="--substitute names the data"):
        dfkd.resolve_config("dfq", "digits", substitute="fashion-mnist")


def test_wrong_plugin_option_type_is_one_line(tmp_path: Path, teacher_dir: Path, capsys) -> None:
    code, _, err = run_cli(["distill", "dfq", "--teacher", teacher_dir, "--dataset", "digits",
                            "--out", tmp_path / "x", "--plugin", "atesc:eps=abc"],
                           capsys)  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "plug-in 'atesc' option 'eps' must be float" in err and not (tmp_path / "x").exists()


def _card_with(tmp_path: Path, name: str, num_classes: int, shape: tuple[int, int, int]) -> Path:
    c, h, _ = shape
    fake = make_data(
        "fake",
        torch.rand(4, c, h, h),
        torch.arange(4) % num_classes,
        torch.rand(2, c, h, h),
        torch.arange(2),
        num_classes=num_classes,
    )
    model = dfkd.create_model("lenet5", num_classes=num_classes, in_channels=c, image_size=h)
    return dfkd.save_model(
        tmp_path / name,
        "teacher",
        model,
        architecture={"name": "lenet5", "args": {}},
        data=fake,
        role="teacher",
    )


@pytest.fixture
def existing_run(tmp_path: Path, teacher_dir: Path) -> Path:
    """An output folder holding a finished run, which no failing command may touch."""
    out = tmp_path / "existing"
    dfkd.distill(
        teacher_dir,
        "lenet5_half",
        "kd",
        "digits",
        out=out,
        overrides=["rounds=1", "kd_steps=2"],
        progress=False,
    )
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


def bad_inputs(tmp: Path, teacher: Path) -> dict[str, tuple[list, str]]:
    trunc = tmp / "trunc"
    shutil.copytree(teacher, trunc)
    w = trunc / "teacher.safetensors"
    w.write_bytes(w.read_bytes()[:-100])
    (tmp / "evil.pt").write_bytes(pickle.dumps({"weight": torch.zeros(2)}))
    (tmp / "bad.yaml").write_text("rounds: [1,\n")
    (tmp / "typo.yaml").write_text("optimiser: {lr: 0.1}\n")
    five = _card_with(tmp, "five", 5, (1, 8, 8))
    big = _card_with(tmp, "big", 10, (1, 28, 28))
    base = ["--teacher", teacher, "--student", "lenet5_half", "--dataset", "digits"]
    return {
        "missing dataset files": (
            [
                "distill",
                "kd",
                "--teacher",
                teacher,
                "--dataset",
                "fashion-mnist",
                "--data-root",
                tmp / "none",
            ],
            "make data",
        ),
        "teacher classes != dataset classes": (
            ["distill", "kd", "--teacher", five, "--dataset", "digits"],
            "teacher has 5 classes but dataset 'digits' has 10",
        ),
        "input shape mismatch": (
            ["distill", "kd", "--teacher", big, "--dataset", "digits"],
            r"teacher expects inputs of shape \(1, 28, 28\)",
        ),
        "unknown method": (["distill", "kdd", *base], "did you mean 'kd'"),
        "unknown student": (
            ["distill", "kd", *base[:2], "--student", "lenet5_halv", "--dataset", "digits"],
            "did you mean 'lenet5_half'",
        ),
        "unknown dataset": (
            ["distill", "kd", *base[:4], "--dataset", "digitz"],
            "did you mean 'digits'",
        ),
        "malformed YAML": (
            ["distill", "kd", *base, "--config", tmp / "bad.yaml"],
            "not valid YAML at line",
        ),
        "unknown config key": (
            ["distill", "kd", *base, "--config", tmp / "typo.yaml"],
            "did you mean 'optimizer'",
        ),
        "truncated weights": (
            ["distill", "kd", "--teacher", trunc, "--dataset", "digits"],
            "truncated|damaged",
        ),
        "pickle as weights": (
            [
                "distill",
                "kd",
                "--teacher",
                "lenet5",
                "--teacher-weights",
                tmp / "evil.pt",
                "--dataset",
                "digits",
            ],
            "refuses to load",
        ),
        "bad override": (
            ["distill", "kd", *base, "--set", "rounds"],
            "must look like key.sub=value",
        ),
        "unknown plug-in": (["distill", "kd", *base, "--plugin", "nope"], "unknown plugin 'nope'"),
    }


NAMES = [
    "missing dataset files",
    "teacher classes != dataset classes",
    "input shape mismatch",
    "unknown method",
    "unknown student",
    "unknown dataset",
    "malformed YAML",
    "unknown config key",
    "truncated weights",
    "pickle as weights",
    "bad override",
    "unknown plug-in",
]


@pytest.mark.parametrize("case", NAMES)
def test_bad_input_is_a_clear_error_and_destroys_nothing(
    case: str, tmp_path: Path, teacher_dir: Path, existing_run: Path, capsys
) -> None:
    args, msg = bad_inputs(tmp_path, teacher_dir)[case]
    before = _snapshot(existing_run)
    code, out, err = run_cli([*args, "--out", existing_run, "--overwrite", "--quiet"], capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dfkd: error: "), err
    import re

    assert re.search(msg, lines[0]), lines[0]
    assert _snapshot(existing_run) == before


def test_output_folder_conflict(
    tmp_path: Path, teacher_dir: Path, existing_run: Path, capsys
) -> None:
    before = _snapshot(existing_run)
    code, _, err = run_cli(
        ["distill", "kd", "--teacher", teacher_dir, "--dataset", "digits", "--out", existing_run],
        capsys,
    )
    assert code == 2 and "already holds a run" in err and "--overwrite" in err
    code, _, err = run_cli(
        [
            "teacher",
            "train",
            "--dataset",
            "digits",
            "--model",
            "lenet5",
            "--epochs",
            "1",
            "--out",
            existing_run,
        ],
        capsys,
    )
    assert code == 2 and "already holds a run" in err
    code, _, err = run_cli(
        [
            "distill",
            "kd",
            "--teacher",
            teacher_dir,
            "--dataset",
            "digits",
            "--out",
            tmp_path / "fresh",
            "--resume",
        ],
        capsys,
    )
    assert code == 2 and "nothing to resume" in err
    assert _snapshot(existing_run) == before


def test_stats_collect_cli(tmp_path: Path, teacher_dir: Path, capsys) -> None:
    from dfkd.teachers.stats import TeacherStats

    out = tmp_path / "stats.safetensors"
    args = ["stats", "collect", "--teacher", teacher_dir, "--dataset", "digits", "--out", out]
    code, text, _ = run_cli([*args, "--max-samples", "200"], capsys)
    assert code == 0 and "layer features.0" in text
    st = TeacherStats.load(out)
    assert st.meta["samples"] == 200 and "features.0" in st.spectrum
    before = out.read_bytes()
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "already exists" in err and out.read_bytes() == before
    code, _, err = run_cli([*args, "--overwrite", "--layers", "featurs.0"], capsys)
    assert code == 2 and "did you mean 'features.0'" in err and out.read_bytes() == before


@pytest.mark.parametrize("method", dfkd.list_methods())
def test_describe_prints_the_resolved_config(method: str, capsys) -> None:
    from dfkd.config import build_config, safe_load

    code, out, _ = run_cli(["describe", method, "--dataset", "digits", "--set", "seed=3"], capsys)
    assert code == 0 and out.startswith(f"# {method}:")
    cfg = build_config(safe_load(out))
    assert cfg == dfkd.resolve_config(method, "digits", overrides=["seed=3"])


def test_demo_distils_data_free_by_default(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--out", out, "--teacher-epochs", "3", "--rounds", "2", "--quiet"]
    code, text, _ = run_cli(args, capsys)
    assert code == 0 and "'deepinversion' (data-free)" in text
    m = json.loads((out / "student" / "metrics.json").read_text())
    assert m["method"] == "deepinversion" and m["rounds"] == 2 and m["synthesis_s"] > 0
    assert (out / "student" / "samples.png").is_file()
    code, _, err = run_cli(args, capsys)  # the same folder again: refused, nothing touched
    assert code == 2 and "--overwrite" in err
    assert json.loads((out / "student" / "metrics.json").read_text()) == m


def test_distill_without_a_method_runs_the_recommended_one(
    tmp_path: Path, teacher_dir: Path, capsys
) -> None:
    """No method: the recommendation for the teacher runs (the digits teacher has BatchNorm:
    fast), and the CLI, metrics.json and the API say which and why."""
    quick = ["--set", "rounds=2", "--set", "warmup_rounds=1", "--set", "kd_steps=2",
             "--set", "g_steps=1", "--quiet"]  # fmt: skip
    code, out, _ = run_cli(["distill", "--teacher", teacher_dir, "--dataset", "digits",
                            "--out", tmp_path / "a", *quick], capsys)  # fmt: skip
    assert code == 0 and "method (auto)" in out and "fast: a BatchNorm teacher" in out
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert saved["method"] == "fast" and saved["method_choice"].startswith("fast: ")
    code, out, _ = run_cli(["describe", "auto", "--teacher", str(teacher_dir)], capsys)
    assert code == 0 and out.startswith("# auto: dfkd distill fast  (a BatchNorm teacher")
    code, _, err = run_cli(["describe", "auto"], capsys)
    assert code == 2 and "--teacher" in err


def test_the_recommendation_follows_the_teacher() -> None:
    from dfkd.recommend import recommend

    assert recommend(True, False).method == "fast"
    assert "statistics file" in recommend(False, True).why
    assert "no statistics file" in recommend(False, False).why
    assert recommend(False, False).method == "deepinversion"  # the best of all without stats
    nt = recommend(True, False, non_transferable=True)
    assert (nt.method, nt.plugins) == ("dfq", ("atesc",))
    assert nt.command() == "dfkd distill dfq --plugin atesc"
    assert recommend(False, False, backdoor=True).plugins == ("trigger_filter:mode=both",)


def test_every_option_is_documented_in_describe(capsys) -> None:
    """Every option of every registered source, loss term and plug-in is named by its docstring,
    and `dfkd describe --options` shows each of a method's options with that line."""
    from dfkd.losses import TERMS
    from dfkd.plugins import PLUGINS
    from dfkd.registry import options_of
    from dfkd.sources import SOURCES

    bare = [f"{reg.kind} {e.name}: {opt}" for reg in (SOURCES, TERMS, PLUGINS)
            for e in reg.entries() for opt, _, doc in options_of(e.obj) if not doc]  # fmt: skip
    assert bare == []
    code, out, _ = run_cli(["describe", "fast", "--dataset", "mnist10k", "--options"], capsys)
    assert code == 0 and "#     condition = 0.0  condition: feed each image's target" in out
    assert "#   plug-in class_balance" in out and "#     min_teacher_std = 4.0" in out


def test_flags_take_their_api_parameters_defaults_and_types() -> None:
    import inspect

    from dfkd.cli import build_parser
    from dfkd.teachers.nt import train_nt_teacher

    base = ["teacher", "train-nt", "--kind", "ntl", "--dataset", "mnist10k", "--out", "x"]
    ns = build_parser().parse_args(base)
    params = inspect.signature(train_nt_teacher).parameters
    for name in ("model", "epochs", "seed", "batch_size", "lr", "lr_decay", "init", "ood"):
        assert getattr(ns, name) == params[name].default, name
    ns = build_parser().parse_args([*base, "--lr", "0.5", "--epochs", "3", "--overwrite"])
    assert (ns.lr, ns.epochs, ns.overwrite) == (0.5, 3, True)
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--epochs", "three"])


def test_flag_kinds_and_call_by_name() -> None:
    import argparse
    from collections.abc import Sequence

    from dfkd.cliflags import _kind, call

    assert _kind(bool) is bool and _kind(int | None) is int and _kind(float) is float
    assert _kind(str | Path | None) is str and _kind(str | float | None) is str
    assert _kind(Sequence[str] | None) is list
    seen: dict[str, object] = {}

    def fn(a: int, b: int = 1, *, c: int | None = None) -> None:
        seen.update(a=a, b=b, c=c)

    call(fn, argparse.Namespace(a=1, b=2, other=3), c=4)  # 'other' is no parameter of fn
    assert seen == {"a": 1, "b": 2, "c": 4}

"""Every command's bad inputs in one table: each exits with code 2 and one line on stderr that
says what to do, and leaves every file where it was (a finished run in the folder a command
was pointed at included)."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import dfkd
from dfkd.cli import main
from dfkd.data.base import make_data

RUN = "RUN"  # replaced by the folder holding a finished run


def _card(tmp: Path, name: str, num_classes: int, size: int) -> Path:
    x, y = torch.rand(4, 1, size, size), torch.arange(4) % num_classes
    fake = make_data("fake", x, y, x[:2], y[:2], num_classes=num_classes)
    model = dfkd.create_model("lenet5", num_classes=num_classes, in_channels=1, image_size=size)
    arch = {"name": "lenet5", "args": {}}
    return dfkd.save_model(tmp / name, "teacher", model, architecture=arch, data=fake,
                           role="teacher")  # fmt: skip


def _files(tmp: Path, teacher: Path) -> dict[str, Path]:
    """The bad files the cases point at."""
    f = {"teacher": teacher}
    trunc = tmp / "trunc"
    shutil.copytree(teacher, trunc)
    weights = trunc / "teacher.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    f["trunc"] = trunc
    f["pickle"] = tmp / "evil.pt"
    f["pickle"].write_bytes(pickle.dumps({"weight": torch.zeros(2)}))
    texts = {
        "bad.yaml": "rounds: [1,\n",
        "typo.yaml": "optimiser: {lr: 0.1}\n",
        "unsafe.yaml": "rounds: !!python/object/apply:os.system ['true']\n",
        "list.yaml": "- rounds\n",
        "notjson.json": "{format: dfkd",
        "other.json": json.dumps({"format": "someone-else/2"}),
    }
    for name, text in texts.items():
        f[name] = tmp / name
        f[name].write_text(text)
    badcard = tmp / "badcard"
    badcard.mkdir()
    (badcard / "teacher.json").write_text("{not json")
    f["badcard"], f["five"], f["big"] = badcard, _card(tmp, "five", 5, 8), _card(tmp, "big", 10, 28)
    f["nonfinite"] = tmp / "nan.safetensors"
    save_file({"w": torch.full((2,), float("nan"))}, f["nonfinite"])
    (tmp / "empty").mkdir()
    f["empty"] = tmp / "empty"
    return f


def cases(f: dict[str, Path]) -> dict[str, tuple[list, str]]:
    """name → (argv, what the error line must say)."""
    parts = (_distill_cases, _distill_option_cases, _distill_file_cases, _teacher_cases,
             _reading_cases)  # fmt: skip
    return {k: v for part in parts for k, v in part(f).items()}


def _distill_cases(f: dict[str, Path]) -> dict[str, tuple[list, str]]:
    """Bad inputs of dfkd distill: names, shapes and config files."""
    t = ["--teacher", f["teacher"]]
    d = ["distill", "dfq", *t, "--dataset", "digits"]
    out = ["--out", RUN]
    over = [*out, "--overwrite"]  # past the folder check: the error must come from the input
    return {
        # distill
        "distill: missing dataset files": (
            [
                "distill",
                "kd",
                *t,
                "--dataset",
                "fashion-mnist",
                "--data-root",
                f["empty"],
                *out,
                "--overwrite",
            ],
            "make data",
        ),
        "distill: teacher classes != dataset's": (
            ["distill", "kd", "--teacher", f["five"], "--dataset", "digits", *out, "--overwrite"],
            "5 classes but dataset 'digits' has 10",
        ),
        "distill: input shape mismatch": (
            ["distill", "kd", "--teacher", f["big"], "--dataset", "digits", *out, "--overwrite"],
            r"shape \(1, 28, 28\)",
        ),
        "distill: unknown method": (["distill", "dfqq", *t, *over], "did you mean 'dfq'"),
        "distill: unknown student": ([*d, "--student", "lenet5_halv", *over], "lenet5_half"),
        "distill: unknown dataset": (
            ["distill", "dfq", *t, "--dataset", "digitz", *over],
            "did you mean 'digits'",
        ),
        "distill: malformed YAML": (
            [*d, "--config", f["bad.yaml"], *out, "--overwrite"],
            "not valid YAML",
        ),
        "distill: unsafe YAML tag": (
            [*d, "--config", f["unsafe.yaml"], *out, "--overwrite"],
            "YAML tag that can build Python objects",
        ),
        "distill: YAML that is not a mapping": (
            [*d, "--config", f["list.yaml"], *over],
            "mapping",
        ),
        "distill: unknown config key": (
            [*d, "--config", f["typo.yaml"], *out, "--overwrite"],
            "did you mean 'optimizer'",
        ),
    }


def _distill_option_cases(f: dict[str, Path]) -> dict[str, tuple[list, str]]:
    """Bad inputs of dfkd distill: options and plug-ins."""
    t = ["--teacher", f["teacher"]]
    d = ["distill", "dfq", *t, "--dataset", "digits"]
    out = ["--out", RUN]
    over = [*out, "--overwrite"]  # past the folder check: the error must come from the input
    return {
        "distill: --set without '='": ([*d, "--set", "rounds", *over], "key.sub=value"),
        "distill: --set of the wrong type": (
            [*d, "--set", "rounds=many", *out, "--overwrite"],
            "rounds",
        ),
        "distill: negative rounds": ([*d, "--set", "rounds=-1", *out, "--overwrite"], "≥ 1"),
        "distill: unknown term": (
            [*d, "--set", "distill_terms.kd_kll.weight=1", *out, "--overwrite"],
            "kd_kl",
        ),
        "distill: unknown plug-in": (
            [*d, "--plugin", "kdcii", *out, "--overwrite"],
            "unknown plugin 'kdcii'",
        ),
        "distill: plug-in option of the wrong type": (
            [*d, "--plugin", "atesc:eps=big", *out, "--overwrite"],
            "must be float",
        ),
        "distill: unknown plug-in option": (
            [*d, "--plugin", "atesc:epsilon=0.1", *out, "--overwrite"],
            "epsilon",
        ),
    }


def _distill_file_cases(f: dict[str, Path]) -> dict[str, tuple[list, str]]:
    """Bad inputs of dfkd distill: files and folders."""
    t = ["--teacher", f["teacher"]]
    d = ["distill", "dfq", *t, "--dataset", "digits"]
    out = ["--out", RUN]
    return {
        "distill: truncated weights": (
            ["distill", "kd", "--teacher", f["trunc"], "--dataset", "digits", *out, "--overwrite"],
            "truncated|damaged",
        ),
        "distill: a pickle as weights": (
            [
                "distill",
                "kd",
                "--teacher",
                "lenet5",
                "--teacher-weights",
                f["pickle"],
                "--dataset",
                "digits",
                *out,
                "--overwrite",
            ],
            "refuses to load",
        ),
        "distill: invalid JSON card": (
            [
                "distill",
                "kd",
                "--teacher",
                f["badcard"],
                "--dataset",
                "digits",
                *out,
                "--overwrite",
            ],
            "not valid JSON",
        ),
        "distill: JSON that is not a card": (
            [
                "distill",
                "kd",
                "--teacher",
                f["other.json"],
                "--dataset",
                "digits",
                *out,
                "--overwrite",
            ],
            "not a dfkd model card",
        ),
        "distill: missing statistics file": (
            [*d, "--stats", f["empty"] / "s.safetensors", *out, "--overwrite"],
            "s.safetensors",
        ),
        "distill: unreadable time budget": (
            [*d, "--time-budget", "ten minutes", *out, "--overwrite"],
            "ten minutes",
        ),
        "distill: folder holding another run": ([*d, *out], "already holds a run"),
        "distill: --overwrite with --resume": (
            [*d, *out, "--overwrite", "--resume"],
            "exclude each other",
        ),
        "distill: resume with other settings": (
            ["distill", "kd", *t, "--dataset", "digits", "--set", "rounds=3", *out, "--resume"],
            "config differs",
        ),
        "distill: resume where there is no run": (
            [*d, "--out", f["empty"], "--resume"],
            "nothing to resume",
        ),
        "distill: an --out under a file": ([*d, "--out", f["bad.yaml"] / "run"], "is a file"),
        "distill: an --out that cannot be made": (
            [*d, "--out", "/proc/dfkd-run"],
            "cannot be written",
        ),
        "stats collect: an --out that cannot be made": (
            ["stats", "collect", *t, "--dataset", "digits", "--out", "/proc/d/s.safetensors"],
            "cannot be written",
        ),
    }


def _teacher_cases(f: dict[str, Path]) -> dict[str, tuple[list, str]]:
    """Bad inputs of dfkd teacher and stats."""
    t = ["--teacher", f["teacher"]]
    out = ["--out", RUN]
    return {
        "teacher train: unknown model": (
            ["teacher", "train", "--dataset", "digits", "--model", "lenet6", *out, "--overwrite"],
            "lenet5",
        ),
        "teacher train: folder holding another run": (
            ["teacher", "train", "--dataset", "digits", "--model", "lenet5", *out],
            "already holds a run",
        ),
        "teacher import: factory that does not import": (
            [
                "teacher",
                "import",
                "--model",
                "no_such_pkg.nets:cnn",
                "--weights",
                f["nonfinite"],
                "--dataset",
                "digits",
                *out,
                "--overwrite",
            ],
            "no_such_pkg",
        ),
        "teacher import: bad --normalization": (
            [
                "teacher",
                "import",
                "--model",
                "lenet5",
                "--weights",
                f["nonfinite"],
                "--dataset",
                "digits",
                "--normalization",
                "0.5",
                *out,
                "--overwrite",
            ],
            "MEAN,STD",
        ),
        "teacher train-nt: unknown kind": (
            ["teacher", "train-nt", "--kind", "ntll", "--dataset", "digits", *out, "--overwrite"],
            "ntl",
        ),
        "stats collect: unknown dataset": (
            ["stats", "collect", *t, "--dataset", "digitz", "--out", RUN + "/stats.safetensors"],
            "did you mean 'digits'",
        ),
    }


def _reading_cases(f: dict[str, Path]) -> dict[str, tuple[list, str]]:
    """Bad inputs of commands that read runs and models, and the parser."""
    ["--teacher", f["teacher"]]
    return {
        "eval: no model in the folder": (
            ["eval", "--model", f["empty"], "--dataset", "digits"],
            "holds no",
        ),
        "eval: a pickle as weights": (
            ["eval", "--model", "lenet5", "--weights", f["pickle"], "--dataset", "digits"],
            "refuses to load",
        ),
        "audit: invalid JSON card": (["audit", "--teacher", f["badcard"]], "not valid JSON"),
        "describe: unknown method": (["describe", "deepinvershun"], "deepinversion"),
        "list: unknown registry": (["list", "method"], "invalid choice"),
        "export: unknown format": (
            ["export", "--model", f["teacher"], "--format", "tflite", "--out", RUN + "/m.tflite"],
            "invalid choice",
        ),
        "export: existing output file": (
            ["export", "--model", RUN, "--format", "onnx", "--out", RUN + "/student.json"],
            "exists",
        ),
        "compare: a folder without runs": (
            ["compare", f["empty"], "--out", RUN],
            "holds no finished run",
        ),
        "unknown command": (["distil", "dfq"], "invalid choice"),
    }


@pytest.fixture(scope="module")
def table(teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("bad")
    run = tmp / "run"
    dfkd.distill(teacher_dir, "lenet5_half", "kd", "digits", out=run,
                 overrides=["rounds=1", "kd_steps=2"], progress=False)  # fmt: skip
    return run, cases(_files(tmp, teacher_dir))


def _cli(argv: list[str]) -> int:
    """``dfkd ARGV``'s exit code (argparse's own errors exit through ``SystemExit``)."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code or 0)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}  # fmt: skip


CASE_NAMES = list(cases({k: Path(k) for k in ("teacher", "trunc", "pickle", "bad.yaml",
                                                 "typo.yaml", "unsafe.yaml", "list.yaml",
                                                 "notjson.json", "other.json", "badcard", "five",
                                                 "big", "nonfinite", "empty")}))  # fmt: skip


def test_the_table_is_large() -> None:
    assert len(CASE_NAMES) >= 30


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input(name: str, table: tuple[Path, dict], capsys) -> None:
    run, all_cases = table
    argv, says = all_cases[name]
    argv = [str(a).replace(RUN, str(run)) for a in argv]
    root = run.parent
    before = _snapshot(root)
    code = _cli(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("dfkd: error: "), err
    assert re.search(says, err[0]), err[0]
    assert _snapshot(root) == before

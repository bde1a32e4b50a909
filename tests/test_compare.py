"""``dfkd compare``: finished and running runs side by side, as a table and a picture."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import dfkd
from dfkd.cli import main
from dfkd.errors import DfkdError
from dfkd.io.compare import compare_runs

SHORT = ["rounds=4", "eval_every=2", "checkpoint_every=2", "kd_steps=3"]


@pytest.fixture(scope="module")
def two_runs(teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    for method in ("dfq", "dafl"):
        dfkd.distill(teacher_dir, "lenet5_half", method, "digits", out=root / method,
                     overrides=SHORT, progress=False)  # fmt: skip
    return [root / "dfq", root / "dafl"]


def test_table_holds_each_runs_final_figures(two_runs: list[Path], tmp_path: Path) -> None:
    r = compare_runs(two_runs, tmp_path)
    for run, row in zip(two_runs, r["runs"], strict=True):
        m = dfkd.evaluate(run, "digits")
        assert row["method"] == run.name and row["status"] == "finished"
        assert row["final"] == pytest.approx(m["accuracy"]) and row["steps"] == 12
        assert f"{100 * row['final']:.2f}" in r["table"]
        assert len(row["curve"]) == 2  # evaluations at rounds 2 and 4
    assert r["table"].count("\n") == 3  # header, rule, two runs
    assert (tmp_path / "compare.md").read_text().strip() == r["table"]
    assert r["plotted"]  # matplotlib comes with the dev install CI runs
    assert (tmp_path / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(not row["recall_curve"] for row in r["runs"])  # no pool: no recall


def test_a_pool_runs_recall_is_a_column_and_a_second_panel(
    two_runs: list[Path], teacher_dir: Path, tmp_path: Path
) -> None:
    fast = tmp_path / "fast"
    dfkd.distill(teacher_dir, "lenet5_half", "fast", "digits", out=fast, overrides=SHORT,
                 progress=False)  # fmt: skip
    compare_runs([two_runs[0]], tmp_path / "one")  # one panel: no run has a pool
    both = compare_runs([two_runs[0], fast], tmp_path / "both")
    row = both["runs"][1]
    assert len(row["recall_curve"]) == 2 and 0 <= row["recall_curve"][-1][1] <= 1
    assert f"{row['recall_curve'][-1][1]:.3f}" in both["table"]
    width = lambda p: int.from_bytes(p.read_bytes()[16:20], "big")  # noqa: E731  PNG IHDR
    assert width(tmp_path / "both" / "compare.png") > 1.5 * width(tmp_path / "one" / "compare.png")


def test_a_running_run_is_read_from_its_live_log(two_runs: list[Path], teacher_dir: Path,
                                                 tmp_path: Path) -> None:  # fmt: skip
    live = tmp_path / "live"
    dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", out=live, overrides=SHORT,
                 stop_after_rounds=2, progress=False)  # fmt: skip
    r = compare_runs([two_runs[0], live], tmp_path / "cmp")
    row = r["runs"][1]
    assert row["status"] == "running" and row["steps"] == 6 and len(row["curve"]) == 1


def test_bad_runs_and_existing_outputs_are_refused(two_runs: list[Path], tmp_path: Path,
                                                   capsys) -> None:  # fmt: skip
    with pytest.raises(DfkdError, match="holds no finished run"):
        compare_runs([tmp_path], tmp_path / "out")
    with pytest.raises(DfkdError, match="not a run folder"):
        compare_runs([tmp_path / "missing"])
    copy = tmp_path / "copy"
    shutil.copytree(two_runs[0], copy)
    (tmp_path / "compare.md").write_text("mine")
    assert main(["compare", str(copy)]) == 2
    assert "exist" in capsys.readouterr().err and (tmp_path / "compare.md").read_text() == "mine"
    assert main(["compare", str(copy), "--overwrite"]) == 0
    assert "| copy | dfq |" in capsys.readouterr().out

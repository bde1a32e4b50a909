"""The GPU benchmark's script, at smoke-test size on the CPU (the table itself needs a GPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_gpu_benchmark_runs_at_small_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    import gpu

    res = tmp_path / "res"
    argv = ["--small", "--dataset", "digits:size=16,channels=3", "--methods", "dfq", "nayer",
            "--out", str(tmp_path / "runs"), "--results", str(res)]  # fmt: skip
    gpu.main(argv)
    doc = json.loads((res / "gpu.json").read_text())
    assert set(doc["rows"]) == {f"{m}@{p}" for m in ("dfq", "nayer") for p in gpu.PRECISIONS}
    for row in doc["rows"].values():
        assert row["steps"] == 2 and row["rounds"] == 2 and row["student_img_per_s"] > 0
        assert row["share"] >= 0 and row["peak_mem_gib"] is None  # no GPU here
    assert doc["teacher"]["model"] == "resnet8" and "syncs" not in doc
    page = (res / "gpu.md").read_text()
    assert "| nayer | bf16-mixed |" in page
    gpu.main(argv)  # rows are kept: nothing runs again
    assert json.loads((res / "gpu.json").read_text())["rows"] == doc["rows"]

"""The throughput benchmark's script at smoke-test size (its figures need a quiet machine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_throughput_benchmark_runs_at_small_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    import throughput

    monkeypatch.setattr(throughput, "methods", lambda: ["kd", "dfq", "nayer"])
    throughput.main(["--small", "--repeats", "1", "--rounds", "2", "--results", str(tmp_path)])
    doc = json.loads((tmp_path / "throughput.json").read_text())
    assert {(r["method"], r["setup"]) for r in doc["rates"]} == {
        (m, s) for m in ("kd", "dfq", "nayer") for s in throughput.SETUPS
    }
    assert all(r["student_img_per_s"] > 0 for r in doc["rates"])
    assert [r["method"] for r in doc["overhead"]] == ["kd", "dfq"]
    assert all(r["engine_s"] > 0 and r["bare_s"] > 0 for r in doc["overhead"])
    assert "| dfq |" in (tmp_path / "throughput.md").read_text()

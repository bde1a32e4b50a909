"""Real two-process DDP runs on CPU (gloo) through Lightning Fabric's spawn strategy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dfkd
from dfkd.errors import ConfigError

# a rank that waits two minutes for the other fails (and exits) instead of hanging the suite
DDP = ["fabric.accelerator=cpu", "fabric.devices=2", "fabric.strategy=ddp_spawn",
       "fabric.timeout_s=120"]  # fmt: skip


@pytest.mark.timeout(120)  # the hang this guards against is otherwise endless
def test_two_process_ddp_classical_kd(tmp_path: Path, teacher_dir: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A student larger than a pipe's 64 KiB: a spawned run handed rank 0's weights back
    through the launcher's pipe, which blocked rank 0 while the launcher waited for it."""
    monkeypatch.delenv("MASTER_PORT", raising=False)
    student = dfkd.create_model("lenet5", num_classes=10, in_channels=1, image_size=8)
    assert sum(t.numel() * t.element_size() for t in student.state_dict().values()) > 65536
    fast = ["rounds=4", "kd_steps=4", "batch_size=32", "eval_every=2", "checkpoint_every=2"]
    m = dfkd.distill(
        teacher_dir,
        "lenet5",
        "kd",
        "digits",
        out=tmp_path / "ddp",
        overrides=fast + DDP,
        progress=False,
    )
    assert m["completed"] and m["steps"] == 16
    assert "MASTER_PORT" not in os.environ  # the next run meets on a fresh port
    assert m["student_accuracy"] > 0.3  # 16 steps on digits: well above chance (0.1)
    saved = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert saved["student_accuracy"] == m["student_accuracy"]
    r = dfkd.evaluate(tmp_path / "ddp" / "student.json", "digits")
    assert abs(r["accuracy"] - m["student_accuracy"]) < 1e-6  # rank 0 wrote the trained weights


@pytest.mark.parametrize("method", ["dfq", "dfad", "deepinversion", "fast", "nayer", "cmi"])
def test_two_process_ddp_data_free(tmp_path: Path, teacher_dir: Path, method: str) -> None:
    short = ["rounds=4", "eval_every=2", "checkpoint_every=2"]
    m = dfkd.distill(
        teacher_dir,
        "lenet5_half",
        method,
        "digits",
        out=tmp_path / method,
        overrides=short + DDP,
        progress=False,
    )
    assert m["completed"] and m["synthesis_s"] > 0
    assert (tmp_path / method / "samples.png").is_file()
    assert m["student_accuracy"] > (0.1 if method == "dfad" else 0.15)  # dfad: slowest start
    # each rank synthesised its own samples, yet the learned weights stayed bit-identical
    assert m["replicas_identical"] == {"student": True, "source": True}


def test_two_process_ddp_time_budget(tmp_path: Path, teacher_dir: Path) -> None:
    """Each rank times its own throwaway loop; every rank runs rank 0's plan (and its
    re-plans)."""
    m = dfkd.distill(teacher_dir, "lenet5_half", "dfad", "digits", out=tmp_path / "b",
                     overrides=DDP, time_budget="20s", progress=False)  # fmt: skip
    b = m["budget"]
    assert m["completed"] and m["rounds"] == (b["end_round"] or b["final_rounds"]) >= 1
    saved = (tmp_path / "b" / "config.yaml").read_text()
    assert f"rounds: {b['final_rounds']}\n" in saved and "time_budget: null" in saved
    assert f"end_round: {b['end_round'] if b['end_round'] else 'null'}\n" in saved


def test_a_timeout_is_for_ddp_strategies_only(tmp_path: Path, teacher_dir: Path) -> None:
    """``fabric.timeout_s`` reaches the DDP strategy Fabric is given; elsewhere it is a one-line
    error before any output."""
    from dfkd.engine.run import fabric_args

    cfg = dfkd.resolve_config("kd", "digits", overrides=[*DDP[:3], "fabric.timeout_s=7.5"])
    strategy = fabric_args(cfg.fabric)["strategy"]
    assert strategy._timeout.total_seconds() == 7.5 and strategy._start_method == "spawn"
    with pytest.raises(ConfigError, match=r"fabric\.timeout_s is for the DDP strategies"):
        dfkd.distill(teacher_dir, "lenet5_half", "kd", "digits", out=tmp_path / "x",
                     overrides=["fabric.timeout_s=60"], progress=False)  # fmt: skip
    assert not (tmp_path / "x").exists()
    with pytest.raises(ConfigError, match=r"'fabric\.timeout_s' must be > 0"):
        dfkd.resolve_config("kd", "digits", overrides=["fabric.timeout_s=0"])


def test_replica_check_sees_a_drifted_rank() -> None:
    """The digest behind ``replicas_identical`` changes with one flipped bit."""
    from dfkd.engine.replicas import digest

    a = {"w": torch.ones(3, dtype=torch.bfloat16), "b": torch.zeros(())}
    b = {"w": torch.ones(3, dtype=torch.bfloat16), "b": torch.zeros(())}
    assert digest(a) == digest(b)
    b["w"].view(torch.int16)[1] ^= 1
    assert digest(a) != digest(b)


def test_torchrun_launches_a_two_process_run(tmp_path: Path, teacher_dir: Path) -> None:
    """``strategy: ddp`` under ``torchrun``: each process runs the CLI, rank 0 writes and
    reports, and the replicas end bit-identical."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "dfkd.cli", "distill", "fast", "--teacher", str(teacher_dir), "--student",
           "lenet5_half", "--dataset", "digits", "--out", str(tmp_path / "run"), "--quiet",
           "--set", "rounds=4", "--set", "warmup_rounds=1", "--set", "fabric.accelerator=cpu",
           "--set", "fabric.devices=2", "--set", "fabric.strategy=ddp",
           "--set", "fabric.timeout_s=120"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("student accuracy") == 1  # one report, from rank 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["completed"] and m["replicas_identical"] == {"student": True, "source": True}
    assert "strategy: ddp\n" in (tmp_path / "run" / "config.yaml").read_text()


def test_two_ranks_at_half_the_batch_match_one_rank(teacher_dir: Path) -> None:
    """The same global batch on two ranks (``batch_size`` is per rank) distils as well as one
    process does: dfq's digits preset, mean of two seeds, within noise (seeds alone move a
    run by about 7 points here)."""
    one, two = [], []
    for seed in (0, 1):
        kw = dict(seed=seed, progress=False)
        one.append(dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", **kw))
        two.append(dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits",
                                overrides=[*DDP, "batch_size=64"], **kw))  # fmt: skip
    assert dfkd.resolve_config("dfq", "digits").batch_size == 128
    mean = [sum(m["student_accuracy"] for m in ms) / 2 for ms in (one, two)]
    assert mean[0] > 0.5 and abs(mean[0] - mean[1]) < 0.1, mean

"""``logger: csv | tensorboard | none``: every round's loss terms and learning rates, every
evaluation (OOD metrics included) and the sample grid, streamed to ``OUT/logs`` through
Fabric's loggers."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import dfkd
from dfkd.errors import ConfigError

SHORT = ["rounds=4", "eval_every=2", "checkpoint_every=2", "kd_steps=3"]


def _run(teacher_dir: Path, out: Path, *extra: str, **kw) -> dict:
    return dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", out=out,
                        overrides=[*SHORT, *extra], progress=False, **kw)  # fmt: skip


def test_csv_logger_streams_every_round_and_evaluation(teacher_dir: Path, tmp_path: Path) -> None:
    m = _run(teacher_dir, tmp_path, "evaluate.ood_dataset=mnist10k:size=8")
    rows = list(csv.DictReader((tmp_path / "logs" / "metrics.csv").open()))
    rounds = [r for r in rows if r["kd_kl"]]
    evals = [r for r in rows if r["student_accuracy"]]
    assert len(rounds) == 4 and len(evals) == 2
    assert {"lr", "generator_lr", "synth/stat_match", "synth/loss", "loss"} <= set(rows[0])
    assert [int(r["step"]) for r in rounds] == [3, 6, 9, 12]
    assert float(evals[-1]["student_accuracy"]) == pytest.approx(m["student_accuracy"])
    assert any(k.startswith("ood_") and evals[-1][k] for k in rows[0])  # the OOD metrics
    lrs = [float(r["lr"]) for r in rounds]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] > lrs[-1]  # the cosine schedule


def test_tensorboard_logger_keeps_scalars_and_the_sample_grid(teacher_dir: Path,
                                                              tmp_path: Path) -> None:  # fmt: skip
    pytest.importorskip("tensorboard", reason="the 'tensorboard' extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    m = _run(teacher_dir, tmp_path, "logger=tensorboard")
    events = EventAccumulator(str(tmp_path / "logs"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    assert {"student_accuracy", "agreement", "kd_kl", "lr", "synth/stat_match"} <= set(
        tags["scalars"]
    )
    acc = events.Scalars("student_accuracy")
    assert [e.step for e in acc] == [6, 12] and acc[-1].value == pytest.approx(
        m["student_accuracy"]
    )
    assert [e.step for e in events.Scalars("lr")] == [3, 6, 9, 12]  # once per round
    assert tags["images"] == ["samples"] and len(events.Images("samples")) == 2


def test_logger_none_writes_no_logs_and_overwrite_clears_them(teacher_dir: Path,
                                                             tmp_path: Path) -> None:  # fmt: skip
    _run(teacher_dir, tmp_path)
    assert (tmp_path / "logs" / "metrics.csv").is_file()
    _run(teacher_dir, tmp_path, "logger=none", overwrite=True)
    assert not (tmp_path / "logs").exists()


def test_a_resumed_run_appends_to_its_log(teacher_dir: Path, tmp_path: Path) -> None:
    _run(teacher_dir, tmp_path, stop_after_rounds=2)
    _run(teacher_dir, tmp_path, resume=True)
    rows = list(csv.DictReader((tmp_path / "logs" / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows if r["kd_kl"]] == [3, 6, 9, 12]


def test_unknown_logger_is_refused() -> None:
    with pytest.raises(ConfigError, match="'logger' must be one of"):
        dfkd.resolve_config("dfq", "digits", overrides=["logger=wandb"])

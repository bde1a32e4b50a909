"""Shared fixtures: small real data (sklearn digits) and a quickly trained digits teacher."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from lightning_fabric import Fabric

import dfkd
from dfkd.sources import SourceEnv

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def float32_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """``fabric.precision: auto`` settles to float32 in every test, as on a CPU without bfloat16
    matrix units: the suite computes the same on every machine (bfloat16 is tested by name,
    tests/test_precision.py, and the rule itself in tests/test_speed_options.py)."""
    from dfkd.engine import speed

    monkeypatch.setattr(speed, "bf16_matrix_units", lambda: False)


@pytest.fixture(scope="session")
def digits() -> dfkd.Data:
    return dfkd.load_dataset("digits")


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory, digits: dfkd.Data) -> Path:
    """A lenet5 teacher trained briefly on digits, saved as a card."""
    out = tmp_path_factory.mktemp("teacher")
    card = dfkd.train_teacher(digits, "lenet5", epochs=6, out=out, batch_size=64, progress=False)
    assert card["test_accuracy"] > 0.85
    return out


@pytest.fixture(scope="session")
def digits_stats(teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits teacher's feature statistics file (``dfkd stats collect``)."""
    out = tmp_path_factory.mktemp("stats") / "stats.safetensors"
    dfkd.collect_teacher_stats(teacher_dir, "digits", None, out)
    return out


def digits_env(digits: dfkd.Data, teacher_dir: Path, batch_size: int, **budget: int) -> SourceEnv:
    """A CPU source environment: the digits teacher (eval mode), a fresh ``lenet5_half``
    student, seed 0, and ``budget`` (``rounds``, ``g_steps``)."""
    teacher, _ = dfkd.load_model(teacher_dir)
    teacher.eval()
    student = dfkd.create_model("lenet5_half", num_classes=10, in_channels=1, image_size=8)
    return SourceEnv(Fabric(accelerator="cpu", devices=1), digits, teacher, student, batch_size,
                     0, **budget)  # fmt: skip


def require_data(path: Path, what: str) -> None:
    """Skip when a registry-installed dataset is absent locally; on CI (CI=true) it must exist."""
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{what} missing on CI at {path}; .ci/run must install it (make data)")
        pytest.skip(f"{what} not installed (run `make data`)")


def assert_resume_matches(
    teacher: Path, method: str, tmp_path: Path, stop_after: int, **kw
) -> tuple[dict, dict]:
    """Run ``method`` on digits unbroken (``tmp_path/a``) and stopped after ``stop_after`` rounds
    then resumed (``tmp_path/b``); assert both students have identical weights."""
    from safetensors.torch import load_file

    def run(out: str, **extra) -> dict:
        return dfkd.distill(teacher, "lenet5_half", method, "digits", out=tmp_path / out, **kw,
                            **extra)  # fmt: skip

    full = run("a")
    run("b", stop_after_rounds=stop_after)
    again = run("b", resume=True)
    assert again["student_accuracy"] == full["student_accuracy"]
    wa, wb = (load_file(tmp_path / d / "student.safetensors") for d in "ab")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    return full, again

"""``dfkd export``: ONNX (checked with onnxruntime) and TorchScript, normalisation folded into
the graph or recorded in the file, and a KDCI student exported with its kept head."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import dfkd
from dfkd.cli import main
from dfkd.errors import DfkdError
from dfkd.io.export import run_exported
from dfkd.models.heads import Headed

onnx = pytest.importorskip("onnx", reason="the 'export' extra")
pytest.importorskip("onnxruntime", reason="the 'export' extra")


def _pixels(digits: dfkd.Data, n: int = 64) -> torch.Tensor:
    return digits.denormalize(digits.x_test[:n])


def _normalise(digits: dfkd.Data, pixels: torch.Tensor) -> torch.Tensor:
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (digits.mean, digits.std))
    return (pixels - mean) / std


def _expected(card_dir: Path, x_normalised: torch.Tensor) -> torch.Tensor:
    model, _ = dfkd.load_model(card_dir)
    with torch.no_grad():
        return model.eval()(x_normalised)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("folded", [False, True])
def test_export_matches_pytorch(fmt: str, folded: bool, teacher_dir: Path, digits: dfkd.Data,
                                tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / f"teacher.{fmt}"
    r = dfkd.export_model(teacher_dir, fmt, out, include_normalization=folded)
    assert out.is_file() and r["max_abs_diff"] <= 1e-4
    pixels = _pixels(digits)
    normalised = _normalise(digits, pixels)
    got = run_exported(out, fmt, pixels if folded else normalised)
    assert (got - _expected(teacher_dir, normalised)).abs().max() <= 1e-4
    if not folded:  # fed pixels, a graph without the normalisation answers differently
        assert (run_exported(out, fmt, pixels) - got).abs().max() > 1e-2


def test_metadata_records_the_normalisation(teacher_dir: Path, digits: dfkd.Data,
                                            tmp_path: Path) -> None:  # fmt: skip
    dfkd.export_model(teacher_dir, "onnx", tmp_path / "t.onnx")
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "t.onnx")).metadata_props}
    assert json.loads(props["normalization_mean"]) == pytest.approx(list(digits.mean))
    assert json.loads(props["normalization_std"]) == pytest.approx(list(digits.std))
    assert json.loads(props["normalization_in_graph"]) is False
    extra = {"dfkd.json": ""}
    dfkd.export_model(teacher_dir, "torchscript", tmp_path / "t.pt", include_normalization=True)
    torch.jit.load(str(tmp_path / "t.pt"), _extra_files=extra)
    meta = json.loads(extra["dfkd.json"])
    assert meta["input"] == "pixels in [0, 1]" and json.loads(meta["normalization_in_graph"])


def test_kdci_student_exports_as_the_model_that_was_evaluated(
    teacher_dir: Path, digits: dfkd.Data, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    m = dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", out=run,
                     plugins=["kdci:n=8,samples=256,keep=true"],
                     overrides=["rounds=6", "eval_every=2", "checkpoint_every=2", "kd_steps=3"],
                     progress=False)  # fmt: skip
    model, _ = dfkd.load_model(run)
    assert isinstance(model, Headed)
    out = tmp_path / "student.onnx"
    dfkd.export_model(run, "onnx", out, include_normalization=True)
    pixels = digits.denormalize(digits.x_test)
    logits = run_exported(out, "onnx", pixels)
    accuracy = float((logits.argmax(1) == digits.y_test).float().mean())
    assert accuracy == pytest.approx(m["student_accuracy"], abs=1e-6)
    with torch.no_grad():
        bare = model.student.eval()(_normalise(digits, pixels))
    assert not torch.equal(logits.argmax(1), bare.argmax(1))  # the head is in the graph


def test_export_refuses_bad_input_and_writes_nothing(teacher_dir: Path, tmp_path: Path,
                                                     capsys) -> None:  # fmt: skip
    out = tmp_path / "m.onnx"
    out.write_text("keep me")
    with pytest.raises(DfkdError, match="exists"):
        dfkd.export_model(teacher_dir, "onnx", out)
    assert out.read_text() == "keep me"
    with pytest.raises(DfkdError, match="unknown export format"):
        dfkd.export_model(teacher_dir, "tflite", tmp_path / "m.tflite")
    with pytest.raises(DfkdError, match=r"holds no teacher\.json"):
        dfkd.export_model(tmp_path, "onnx", tmp_path / "x.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    assert main(["export", "--model", str(teacher_dir), "--format", "torchscript",
                 "--out", str(out)]) == 2  # fmt: skip
    assert "exists" in capsys.readouterr().err and out.read_text() == "keep me"
    assert main(["export", "--model", str(teacher_dir), "--format", "torchscript",
                 "--out", str(tmp_path / "m.pt")]) == 0  # fmt: skip
    assert "largest difference" in capsys.readouterr().out

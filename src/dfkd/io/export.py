"""Export a model card's network (a student with its kept head, or a teacher) to ONNX or
TorchScript, checked against PyTorch before the file is kept.

The exported graph takes either normalised inputs, with the card's normalisation written into
the file's metadata, or (``include_normalization``) pixels in ``[0, 1]``, the normalisation
folded into the graph."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import DfkdError
from .cards import card_normalization, card_path, load_card
from .files import check_writable

FORMATS = ("onnx", "torchscript")
#: the largest |exported − PyTorch| an export may show on its check batch
TOLERANCE = 1e-4


class Normalized(nn.Module):
    """``model`` behind its input normalisation: it takes pixels in ``[0, 1]``."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def export_metadata(card: dict[str, Any], folded: bool) -> dict[str, str]:
    """What the exported file records about its input and output (string values)."""
    norm = card_normalization(card)
    mean, std = norm if norm is not None else (None, None)
    from ..version import __version__

    return {
        "dfkd_version": __version__,
        "input": "pixels in [0, 1]" if folded else "normalised: (pixels - mean) / std",
        "input_shape": json.dumps(card.get("input_shape")),
        "normalization_mean": json.dumps(mean),
        "normalization_std": json.dumps(std),
        "normalization_in_graph": json.dumps(folded),
        "num_classes": json.dumps(card.get("num_classes")),
        "class_names": json.dumps(card.get("class_names")),
        "output": "logits",
    }


def _onnx_bytes(net: nn.Module, example: torch.Tensor, meta: dict[str, str]) -> bytes:
    try:
        import onnx
    except ImportError:
        raise DfkdError(
            "ONNX export needs the 'export' extra: pip install 'dfkd[export]'"
        ) from None
    batch = torch.export.Dim("batch")
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the exporter's notes on optional packages (torchvision)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                net, (example,), dynamo=True, input_names=["input"], output_names=["logits"],
                dynamic_shapes=({0: batch},), verbose=False,
            )  # fmt: skip
    finally:
        quiet.setLevel(level)
    assert program is not None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        program.save(str(path), external_data=False)
        model = onnx.load(str(path))
    onnx.helper.set_model_props(model, meta)
    return model.SerializeToString()


def _torchscript_bytes(net: nn.Module, example: torch.Tensor, meta: dict[str, str]) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, example)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer, _extra_files={"dfkd.json": json.dumps(meta)})
    return buffer.getvalue()


def run_exported(path: str | Path, fmt: str, x: torch.Tensor) -> torch.Tensor:
    """The exported model's logits on ``x`` (onnxruntime for ONNX)."""
    if fmt == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is in maintenance
            return torch.jit.load(str(path), map_location="cpu")(x)
    try:
        import onnxruntime
    except ImportError:
        raise DfkdError(
            "checking an ONNX export needs onnxruntime: pip install 'dfkd[export]'"
        ) from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


def export_model(
    model_card: str | Path,
    fmt: str,
    out: str | Path,
    include_normalization: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Export the network of ``model_card`` to ``out`` in ``fmt`` (``onnx`` or
    ``torchscript``); returns what was written and the check's largest difference from
    PyTorch. Nothing is written when the export or its check fails."""
    if fmt not in FORMATS:
        raise DfkdError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise DfkdError(f"'{out}' exists; choose another --out or pass --overwrite")
    check_writable(out.parent)
    cp = card_path(model_card)
    if cp is None:
        raise DfkdError(f"'{model_card}' is not a model card (.json) or a folder holding one")
    model, card = load_card(cp)
    net = model.eval()
    norm = card_normalization(card)
    if include_normalization:
        if norm is None:
            raise DfkdError(f"card '{cp}' records no normalisation to fold into the graph")
        net = Normalized(model, *norm).eval()
    meta = {**export_metadata(card, include_normalization), "source_card": str(cp)}
    gen = torch.Generator().manual_seed(0)
    example = torch.rand(4, *card["input_shape"], generator=gen)
    if not include_normalization and norm is not None:
        mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in norm)
        example = (example - mean) / std
    data = (_onnx_bytes if fmt == "onnx" else _torchscript_bytes)(net, example, meta)
    return _write_checked(out, fmt, data, net, example)


def _write_checked(out: Path, fmt: str, data: bytes, net: nn.Module,
                   example: torch.Tensor) -> dict[str, Any]:  # fmt: skip
    """Write ``data`` to a temporary file beside ``out``, compare it with ``net`` on a batch of
    another size than the traced one, and only then move it to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        x = torch.cat([example, example.flip(0), example[:1]])  # 9 samples, traced with 4
        with torch.no_grad():
            expected = net(x)
        diff = float((run_exported(tmp, fmt, x) - expected).abs().max())
        if not diff <= TOLERANCE:
            raise DfkdError(
                f"the {fmt} export differs from the PyTorch model by {diff:.2e} (> {TOLERANCE}); "
                "nothing was written"
            )
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return {"out": str(out), "format": fmt, "max_abs_diff": diff, "bytes": len(data)}

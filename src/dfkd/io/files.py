"""Safe file I/O: safetensors only (never pickle), atomic writes, nested state without pickling."""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..errors import DfkdError

_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_ZIP_MAGIC = b"PK\x03\x04"


def check_writable(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """``path`` (a folder to be, or a file's) if a folder can be made there and written into;
    else a one-line error. Probed with a temporary folder in the nearest existing ancestor,
    removed at once: nothing is left behind."""
    path = Path(path)
    base = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not base.is_dir():
        raise DfkdError(f"{what} '{path}' cannot be created: '{base}' is a file; choose another")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".dfkd-probe-", dir=base))
    except OSError as e:
        raise DfkdError(
            f"{what} '{path}' cannot be written ({e.strerror or e}); choose another path"
        ) from None
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so readers never see a
    half-written file and an interrupted write leaves the old file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Atomically write UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike[str], what: str = "JSON file") -> Any:
    """Read JSON with a one-line error when the file is missing or malformed."""
    p = Path(path)
    if not p.is_file():
        raise DfkdError(f"{what} '{p}' does not exist")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DfkdError(f"{what} '{p}' is not valid JSON ({e})") from None


def _looks_like_safetensors(data: bytes) -> bool:
    """An 8-byte header length that fits the file, then a JSON object."""
    if len(data) < 10:
        return False
    (n,) = struct.unpack("<Q", data[:8])
    return data[8:9] == b"{" and 8 + n <= len(data) and data[7 + n : 8 + n] in (b"}", b" ")


def _check_safetensors_bytes(data: bytes, path: Path) -> None:
    if _looks_like_safetensors(data):  # first: a header length can begin like a pickle
        return
    if data[:4] == _ZIP_MAGIC or data[:2] in _PICKLE_MAGIC:
        raise DfkdError(
            f"'{path}' is a pickle/torch.save file, which dfkd refuses to load (it can run code); "
            "convert it once, in a trusted environment, with "
            "`safetensors.torch.save_file(torch.load(f, weights_only=True), 'w.safetensors')`"
        )
    if len(data) < 8:
        raise DfkdError(f"'{path}' is not a safetensors file (only {len(data)} bytes)")
    raise DfkdError(
        f"'{path}' is not a complete safetensors file (truncated or another format); "
        "re-export the weights with safetensors"
    )


def load_tensors(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a safetensors file into CPU tensors plus its string metadata, refusing pickles."""
    p = Path(path)
    if not p.is_file():
        raise DfkdError(f"weights file '{p}' does not exist")
    data = p.read_bytes()
    _check_safetensors_bytes(data, p)
    try:
        tensors = st_load(data)
        (n,) = struct.unpack("<Q", data[:8])
        meta = json.loads(data[8 : 8 + n]).get("__metadata__", {}) or {}
    except (SafetensorError, ValueError, json.JSONDecodeError) as e:
        raise DfkdError(
            f"'{p}' is a damaged safetensors file ({e}); re-export the weights"
        ) from None
    return tensors, meta


def save_tensors(
    path: str | os.PathLike[str],
    tensors: dict[str, torch.Tensor],
    meta: dict[str, str] | None = None,
) -> None:
    """Atomically save tensors (made contiguous, moved to CPU) as safetensors."""
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, canonical_header(st_save(clean, metadata=meta)))


def canonical_header(blob: bytes) -> bytes:
    """``blob`` (safetensors bytes) with its metadata keys in sorted order: the writer emits
    them in a per-process hash order, which would make equal states differ byte for byte.
    Only the order changes (same header length, same tensors)."""
    n = int.from_bytes(blob[:8], "little")
    raw = blob[8 : 8 + n]
    header = json.loads(raw)
    if "__metadata__" not in header:
        return blob
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(text) > n or len(text) != len(raw.rstrip(b" ")):
        return blob  # not the compact form this expects: keep the writer's bytes
    return blob[:8] + text.ljust(n, b" ") + blob[8 + n :]


# --- nested state (optimizer states, RNG states, counters) without pickle ---------------------

_T = "__tensor__"


def flatten_state(obj: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """Split a nested structure of dicts/lists/scalars/tensors into a JSON skeleton and tensors.

    Tuples become lists and dict keys become strings (ints are marked so they round-trip).
    """
    tensors: dict[str, torch.Tensor] = {}

    def walk(o: Any) -> Any:
        if isinstance(o, torch.Tensor):
            key = f"t{len(tensors)}"
            tensors[key] = o
            return {_T: key}
        if isinstance(o, dict):
            return {"__dict__": [[_key(k), walk(v)] for k, v in o.items()]}
        if isinstance(o, (list, tuple)):
            return [walk(v) for v in o]
        if o is None or isinstance(o, (bool, int, float, str)):
            return o
        raise TypeError(f"cannot serialise {type(o).__name__} in a checkpoint")

    return walk(obj), tensors


def _key(k: Any) -> Any:
    if isinstance(k, bool) or not isinstance(k, (int, str)):
        raise TypeError(f"unsupported checkpoint dict key {k!r}")
    return k


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""

    def walk(o: Any) -> Any:
        if isinstance(o, dict):
            if _T in o:
                return tensors[o[_T]]
            return {k: walk(v) for k, v in o["__dict__"]}
        if isinstance(o, list):
            return [walk(v) for v in o]
        return o

    return walk(skeleton)


def save_state(path: str | os.PathLike[str], state: Any) -> None:
    """Atomically save a nested state as one safetensors file (skeleton in its metadata)."""
    skeleton, tensors = flatten_state(state)
    save_tensors(path, tensors, {"dfkd_state": json.dumps(skeleton)})


def load_state(path: str | os.PathLike[str]) -> Any:
    """Load a nested state written by :func:`save_state`."""
    tensors, meta = load_tensors(path)
    if "dfkd_state" not in meta:
        raise DfkdError(f"'{path}' is not a dfkd checkpoint")
    return unflatten_state(json.loads(meta["dfkd_state"]), tensors)

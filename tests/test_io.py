"""Safe I/O: safetensors only, pickles refused unread, atomic writes, checkpoint state."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from dfkd.errors import DfkdError
from dfkd.io.cards import load_weights
from dfkd.io.files import (
    atomic_write_bytes,
    flatten_state,
    load_state,
    load_tensors,
    save_state,
    save_tensors,
)
from dfkd.models import create_model


def test_nested_state_round_trip(tmp_path: Path) -> None:
    model = create_model("lenet5_half")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 1, 28, 28)).sum().backward()
    opt.step()
    state = {
        "opt": opt.state_dict(),
        "rng": torch.get_rng_state(),
        "n": 3,
        "f": 0.5,
        "hist": [{"a": 1.0}],
        "none": None,
        "tup": (1, 2),
    }
    save_state(tmp_path / "s.safetensors", state)
    back = load_state(tmp_path / "s.safetensors")
    assert back["n"] == 3 and back["f"] == 0.5 and back["none"] is None and back["tup"] == [1, 2]
    assert torch.equal(back["rng"], state["rng"])
    assert set(back["opt"]["state"]) == set(state["opt"]["state"])  # int keys survive
    opt2 = torch.optim.Adam(model.parameters(), lr=1e-3)
    opt2.load_state_dict(back["opt"])
    k = next(iter(state["opt"]["state"]))
    assert torch.equal(
        opt2.state_dict()["state"][k]["exp_avg"], state["opt"]["state"][k]["exp_avg"]
    )


def test_flatten_rejects_arbitrary_objects() -> None:
    with pytest.raises(TypeError, match="cannot serialise"):
        flatten_state({"x": object()})


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/dfkd-weights-evil"),))


def test_pickle_offered_as_weights_is_refused_unread(tmp_path: Path) -> None:
    marker = Path("/tmp/dfkd-weights-evil")
    marker.unlink(missing_ok=True)
    raw = tmp_path / "w.pkl"
    raw.write_bytes(pickle.dumps({"w": _Evil()}))
    zipped = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(2)}, zipped)
    for p in (raw, zipped):
        with pytest.raises(DfkdError, match="refuses to load") as e:
            load_tensors(p)
        assert "\n" not in str(e.value)
    assert not marker.exists()


def test_truncated_and_foreign_weights(tmp_path: Path) -> None:
    model = create_model("lenet5_half")
    p = tmp_path / "w.safetensors"
    save_tensors(p, model.state_dict())
    load_weights(create_model("lenet5_half"), p)
    trunc = tmp_path / "t.safetensors"
    trunc.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    with pytest.raises(DfkdError, match=r"truncated|damaged"):
        load_tensors(trunc)
    txt = tmp_path / "x.safetensors"
    txt.write_bytes(b"hello world, not weights")
    with pytest.raises(DfkdError, match="not a complete safetensors"):
        load_tensors(txt)
    with pytest.raises(DfkdError, match="does not exist"):
        load_tensors(tmp_path / "missing.safetensors")


def test_weights_for_another_architecture(tmp_path: Path) -> None:
    p = tmp_path / "w.safetensors"
    save_tensors(p, create_model("lenet5").state_dict())
    with pytest.raises(DfkdError, match="do not fit the model"):
        load_weights(create_model("lenet5_half"), p)
    save_tensors(p, create_model("lenet5_nobn").state_dict())
    with pytest.raises(DfkdError, match="do not fit the model"):
        load_weights(create_model("lenet5"), p)


def test_atomic_write_keeps_old_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "f.bin"
    atomic_write_bytes(p, b"old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"old"
    assert [x.name for x in tmp_path.iterdir()] == ["f.bin"]  # no temp file left behind


def test_saved_tensors_have_their_metadata_in_one_order(tmp_path) -> None:
    import json as _json

    import torch as _torch

    from dfkd.io.files import canonical_header, load_tensors, save_tensors

    t = {"w": _torch.arange(4.0), "b": _torch.ones(2)}
    save_tensors(tmp_path / "a.safetensors", t, {"role": "student", "format": "f", "a": "1"})
    blob = (tmp_path / "a.safetensors").read_bytes()
    n = int.from_bytes(blob[:8], "little")
    assert list(_json.loads(blob[8 : 8 + n])["__metadata__"]) == ["a", "format", "role"]
    tensors, meta = load_tensors(tmp_path / "a.safetensors")
    assert meta == {"role": "student", "format": "f", "a": "1"}
    assert all(_torch.equal(tensors[k], t[k]) for k in t)
    assert canonical_header(blob) == blob


def test_a_safetensors_header_length_that_starts_like_a_pickle_still_loads(tmp_path) -> None:
    import torch as _torch

    from dfkd.io.files import load_tensors, save_tensors

    # grow the header until its length's first byte is 0x80 and second 0x03 (pickle protocol 3)
    for pad in range(1200):
        path = tmp_path / "s.safetensors"
        save_tensors(path, {"w": _torch.zeros(1)}, {"k": "x" * pad})
        head = path.read_bytes()[:2]
        if head == b"\x80\x03":
            break
    else:
        raise AssertionError("no header length of the form 0x0380 reached")
    tensors, meta = load_tensors(path)
    assert _torch.equal(tensors["w"], _torch.zeros(1)) and meta["k"] == "x" * pad

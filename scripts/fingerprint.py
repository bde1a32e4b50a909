"""Fingerprint of the engine's behaviour: fixed-seed digits runs of several methods, with their
final metrics and the SHA-256 of the student's weights. Run it before and after a refactor and
compare the two JSON files (``--compare``); identical hashes mean identical weights.

    python scripts/fingerprint.py --out /tmp/before.json
    python scripts/fingerprint.py --out /tmp/after.json --compare /tmp/before.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

import dfkd

#: (label, method, plug-ins) — the runs the redesign promised to keep unchanged
RUNS: list[tuple[str, str, list[str]]] = [
    ("dfq", "dfq", []),
    ("dfad", "dfad", []),
    ("deepinversion", "deepinversion", []),
    ("kd", "kd", []),
    ("ta_dfkd", "ta_dfkd", []),
    ("dfq+kdci", "dfq", ["kdci:samples=256,n=8"]),
    ("fast", "fast", []),
    ("nayer", "nayer", []),
    ("cmi", "cmi", []),
    ("dafl", "dafl", []),
]
KEYS = ("student_accuracy", "agreement", "acc_last5", "steps", "loss_terms",
        "synthetic_class_histogram")  # fmt: skip


def fingerprint(work: Path) -> dict[str, dict]:
    """Train one digits teacher, run every entry of :data:`RUNS` on it, return the records."""
    torch.set_num_threads(2)
    teacher = work / "teacher"
    dfkd.train_teacher("digits", "lenet5", epochs=6, out=teacher, batch_size=64, progress=False)
    out: dict[str, dict] = {"teacher": {"sha256": weights_digest(teacher / "teacher")}}
    for label, method, plugins in RUNS:
        run_dir = work / label.replace("+", "_")
        m = dfkd.distill(teacher, "lenet5_half", method, "digits", out=run_dir, plugins=plugins,
                         seed=0, progress=False)  # fmt: skip
        out[label] = {k: m[k] for k in KEYS} | {"sha256": weights_digest(run_dir / "student")}
    return out


def weights_digest(stem: Path) -> str:
    """SHA-256 of a safetensors file's tensors (names, dtypes, shapes, bytes) — not of the file,
    whose metadata order varies between processes."""
    h = hashlib.sha256()
    tensors = load_file(stem.with_suffix(".safetensors"))
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def compare(now: dict, was: dict) -> list[str]:
    """Lines naming every run whose weights or metrics moved."""
    lines = []
    for label in was:
        a, b = was[label], now.get(label, {})
        moved = [k for k in a if a[k] != b.get(k)]
        lines.append(f"{label:<15} {'same' if not moved else 'moved: ' + ', '.join(moved)}")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--compare", default=None, help="an earlier fingerprint to compare with")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as work:
        now = fingerprint(Path(work))
    Path(a.out).write_text(json.dumps(now, indent=1) + "\n")
    if a.compare:
        lines = compare(now, json.loads(Path(a.compare).read_text()))
        print("\n".join(lines))
        return 0 if all(line.endswith("same") for line in lines) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

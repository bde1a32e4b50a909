"""The pixel values a run's pool holds against the real test images' (in the data's normalised
space): range, moments, and the share at the background value (pixel 0). A short ``fast`` run
without a statistics file on one zoo teacher; the pool is read at each evaluation.

    python benchmarks/explore/pixels.py DATASET TEACHER     # e.g. fashion-mnist cnn-nobn

Prints one line for the real images and one per evaluation; nothing is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # zoo

import torch  # noqa: E402
from zoo import zoo_teacher  # noqa: E402

import dfkd  # noqa: E402
from dfkd.engine.probe import SynthesisProbe  # noqa: E402


def describe(name: str, x: torch.Tensor, background: float) -> str:
    """Range, moments and the share of pixels at (or below) the background value."""
    at_bg = (x <= background + 1e-3).float().mean()
    spread = x.flatten(1).std(1).mean()
    return (f"{name}: min {x.min():.2f} max {x.max():.2f} mean {x.mean():.3f} std {x.std():.3f} "
            f"per-image std {spread:.3f} at background {at_bg:.3f}")  # fmt: skip


def main(dataset: str, teacher_name: str) -> None:
    data = dfkd.load_dataset(dataset)
    background = float(data.bounds[0].min())
    print(describe("real (1000 test images)", data.x_test[:1000], background))
    measure = SynthesisProbe.measure

    def reading(self: SynthesisProbe, source: dfkd.sources.Source) -> dict:
        pooled = source.pool_images(1000)
        if pooled is not None and len(pooled):
            print(describe(f"pool ({len(pooled)} newest)", pooled, background), flush=True)
        return measure(self, source)

    SynthesisProbe.measure = reading  # one process, no spawn: the run calls this one
    teacher = zoo_teacher(teacher_name, dataset, Path("runs/zoo"))
    dfkd.distill(teacher, "lenet5_half", "fast", dataset, progress=False,
                 overrides=["rounds=24", "eval_every=6"])  # fmt: skip


if __name__ == "__main__":
    main(*sys.argv[1:3])

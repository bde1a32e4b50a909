"""Per-class test accuracy of model cards (teachers or students), optionally on mirrored images:
which classes a student misses, and whether a teacher is mirror-invariant.

    python benchmarks/explore/per_class.py DATASET CARD [CARD ...] [--mirror] [--confusion C ...]

Prints one line per card: the accuracy on each class of the test split, then the share of the
test split predicted as each class; with ``--confusion``, a line per class ``C`` counting what
the card predicts for the test images of that class. Zoo teachers need ``benchmarks/`` on the
path (their factories live in ``zoo_nets``); this script puts it there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # zoo_nets

import torch

from dfkd.api import load_checked
from dfkd.data import load_dataset
from dfkd.evaluation.metrics import predict


def predictions(card: str, dataset: str, mirror: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The card's predicted class for every test image, the labels, and the number of classes."""
    model, data = load_checked(card, load_dataset(dataset), None, "model")
    x = data.x_test.flip(-1) if mirror else data.x_test
    return predict(model, x).argmax(1), data.y_test, data.num_classes


def per_class(pred: torch.Tensor, y: torch.Tensor, k: int) -> tuple[list[float], list[float]]:
    """Per-class accuracy and per-class share of predictions."""
    acc = [float((pred[y == c] == c).float().mean()) for c in range(k)]
    share = [float((pred == c).float().mean()) for c in range(k)]
    return acc, share


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("cards", nargs="+")
    ap.add_argument("--mirror", action="store_true", help="mirror every test image")
    ap.add_argument("--confusion", type=int, nargs="*", default=[], metavar="C",
                    help="count the predictions on the test images of class C")  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(1)
    for card in args.cards:
        pred, y, k = predictions(card, args.dataset, args.mirror)
        acc, share = per_class(pred, y, k)
        print(
            card, "accuracy", [round(a, 2) for a in acc], "predicted", [round(s, 2) for s in share]
        )
        for c in args.confusion:
            print(
                card, f"class {c} predicted as", torch.bincount(pred[y == c], minlength=k).tolist()
            )


if __name__ == "__main__":
    main()

"""Why the class term loses: on each zoo teacher, the gradient that each of `fast`'s weighted
synthesis terms sends to a freshly generated batch (the light generator at its initial weights,
random targets, as in a run's first round), with the statistics term summed over the teacher's
BatchNorm layers (the papers' form) and as their mean.

    python benchmarks/explore/term_balance.py [--dataset fashion-mnist] [--teachers ...]

Appends one JSON line per teacher to ``term_balance.jsonl`` beside this script.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # common, zoo

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import log_line  # noqa: E402
from zoo import zoo_teacher  # noqa: E402

import dfkd  # noqa: E402
from dfkd.data import InputMap  # noqa: E402
from dfkd.io.cards import in_model_space  # noqa: E402
from dfkd.losses.bn import bn_stat_loss  # noqa: E402
from dfkd.methods.fast import FAST_SYNTH_TERMS  # noqa: E402
from dfkd.models import create_generator  # noqa: E402
from dfkd.teachers.taps import Taps  # noqa: E402

W_BN = FAST_SYNTH_TERMS["stat_match"]["weight"]
W_CE = FAST_SYNTH_TERMS["class_target"]["weight"]


def grad_norm(loss: torch.Tensor, x: torch.Tensor) -> float:
    (g,) = torch.autograd.grad(loss, x, retain_graph=True)
    return float(g.norm())


def balance(teacher_name: str, dataset: str, zoo: Path, batch: int = 256) -> dict:
    folder = zoo_teacher(teacher_name, dataset, zoo)
    model, card = dfkd.load_model(folder)
    model.eval()
    data = dfkd.load_dataset(dataset)
    to_model = InputMap(data, in_model_space(data, card))
    torch.manual_seed(0)
    gen = create_generator("light_generator", nz=64, out_channels=1, image_size=28)
    x = gen(torch.randn(batch, 64)).detach().requires_grad_(True)
    targets = torch.randint(data.num_classes, (batch,))
    with Taps(model, bn=True) as taps:
        logits = model(to_model(x))
    bn = list(taps.bn.values()), list(taps.bn_refs.values())
    terms = {
        "bn_sum": W_BN * bn_stat_loss(*bn, reduction="sum"),
        "bn_mean": W_BN * bn_stat_loss(*bn) / len(bn[0]),  # the mean over layers
        "class": W_CE * F.cross_entropy(logits, targets),
    }
    grads = {k: grad_norm(v, x) for k, v in terms.items()}
    return {
        "dataset": dataset, "teacher": teacher_name, "bn_layers": len(bn[0]),
        **{f"{k}_value": round(float(v), 4) for k, v in terms.items()},
        **{f"{k}_grad": round(g, 5) for k, g in grads.items()},
        "class_share_of_grad_sum": round(grads["class"] / (grads["class"] + grads["bn_sum"]), 4),
        "class_share_of_grad_mean": round(grads["class"] / (grads["class"] + grads["bn_mean"]), 4),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist10k")
    ap.add_argument("--teachers", nargs="+", default=["lenet5", "resnet-bn", "vgg-bn", "vgg-bn-ls"])
    ap.add_argument("--zoo", default="runs/zoo")
    args = ap.parse_args()
    for t in args.teachers:
        log_line(HERE / "term_balance.jsonl", balance(t, args.dataset, Path(args.zoo)))


if __name__ == "__main__":
    main()

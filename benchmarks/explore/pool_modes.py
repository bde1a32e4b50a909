"""What a run's pooled images of each class are to the teacher, beside the real test images the
teacher gives that class: its confidence (top probability), the runner-up class, and — in the
teacher's penultimate features — the label of each pooled image's nearest real test image.
Reads the run's final checkpoint; the real images only measure.

    python benchmarks/explore/pool_modes.py DATASET TEACHER_CARD RUN_DIR [--images N] [--student]
        [--quarters]

Prints one line per class: the pool's share, the mean top probability on the pooled and on the
real images of that class, the commonest runner-up of each, and where the pooled images' nearest
real neighbours come from (the share whose neighbour is of the same class, and the commonest
other label). With ``--student`` (the run's ``student.json``), also the student's and the
teacher's mean class shares on the pool, and the student's test accuracy after a per-class bias
that makes its mean shares on the pool the teacher's: whether the student's missing class is a
prior learnt from the pool (a bias fixes it) or a matter of features (it does not). With
``--quarters``, the share of same-class nearest neighbours in each quarter of the teacher's top
probability: are the images it is surest of the real-like ones? Zoo teachers need
``benchmarks/`` on the path; this script puts it there.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # zoo_nets

import torch

from dfkd.api import load_checked
from dfkd.data import Data, InputMap, load_dataset
from dfkd.engine.probe import SynthesisProbe
from dfkd.evaluation.metrics import accuracy, class_accuracy, predict
from dfkd.io.files import load_state


def pooled(run: Path, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``n`` images of the run's pool, evenly spread over it, and the class each had by
    the teacher when it joined."""
    bank = load_state(run / "checkpoint.safetensors")["source"]["bank"]
    data, classes = bank["data"], bank["classes"]
    pick = torch.linspace(0, len(data) - 1, min(n, len(data))).long()
    return data[pick], classes[pick]


def nearest_labels(queries: torch.Tensor, real: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The label of each query's nearest real point (Euclidean)."""
    return torch.cat([labels[torch.cdist(q, real).argmin(1)] for q in queries.split(500)])


def runner_up(probs: torch.Tensor) -> int:
    """The commonest second-ranked class (−1 for no images)."""
    return int(probs.topk(2, dim=1).indices[:, 1].mode().values) if len(probs) else -1


def commonest_other(labels: torch.Tensor, c: int) -> tuple[int, float]:
    """The commonest label other than ``c`` and its share of ``labels``."""
    other = labels[labels != c]
    if len(other) == 0:
        return -1, 0.0
    top = int(other.mode().values)
    return top, float((labels == top).float().mean())


def pool_bias(
    student_logits: torch.Tensor, teacher_probs: torch.Tensor, iters: int = 50
) -> torch.Tensor:
    """A per-class logit bias after which the student's mean softmax over the pooled images is
    the teacher's (fixed-point iterations on the log-ratio of the two means)."""
    bias = torch.zeros(student_logits.shape[1])
    goal = teacher_probs.mean(0).clamp_min(1e-8).log()
    for _ in range(iters):
        bias += goal - (student_logits + bias).softmax(1).mean(0).clamp_min(1e-8).log()
    return bias - bias.mean()


def student_report(run: Path, data: Data, x: torch.Tensor, fake_p: torch.Tensor) -> None:
    """The student's class shares on the pool against the teacher's, its agreement with the
    teacher there, and its test accuracy (overall and per class) with and without the pool
    bias."""
    student, sdata = load_checked(str(run / "student.json"), data, None, "model")
    s_pool = predict(student, InputMap(data, sdata)(x))
    s_test = predict(student, sdata.x_test)
    bias = pool_bias(s_pool, fake_p)
    fmt = lambda v: [round(float(a), 3) for a in v]  # noqa: E731
    print("mean share on the pool, teacher:", fmt(fake_p.mean(0)))
    print("mean share on the pool, student:", fmt(s_pool.softmax(1).mean(0)))
    print("pool bias:", fmt(bias))
    t_pool = fake_p.argmax(1)
    agree = [float((s_pool.argmax(1)[t_pool == c] == c).float().mean())
             for c in range(fake_p.shape[1])]  # fmt: skip
    print("student agrees with the teacher on the pool, per teacher class:", fmt(agree))
    y = sdata.y_test
    for name, logits in (("student", s_test), ("student + pool bias", s_test + bias)):
        per = class_accuracy(logits, y, sdata.num_classes)
        print(f"{name}: test accuracy {accuracy(logits, y):.4f}, per class", fmt(per))


def confidence_quarters(fake_p: torch.Tensor, fake_c: torch.Tensor, near: torch.Tensor) -> None:
    """The pooled images in quarters of the teacher's top probability on them: each quarter's
    range and the share whose nearest real test image is of the image's class."""
    top = fake_p.amax(1)
    edges = [0.0, *torch.quantile(top, torch.tensor([0.25, 0.5, 0.75])).tolist(), 1.0]
    for lo, hi in itertools.pairwise(edges):
        m = (top >= lo) & ((top < hi) if hi < 1.0 else (top <= hi))
        same = float((near[m] == fake_c[m]).float().mean())
        print(f"top p {lo:.2f}-{hi:.2f}: {int(m.sum())} images, nearest real same class {same:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("teacher")
    ap.add_argument("run", type=Path)
    ap.add_argument("--images", type=int, default=5000, help="pooled images to read")
    ap.add_argument("--student", action="store_true", help="the run's student on the pool too")
    ap.add_argument("--quarters", action="store_true",
                    help="also the pool in quarters of the teacher's top probability")  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_dataset(args.dataset)
    teacher, model_data = load_checked(args.teacher, data, None, "teacher")
    teacher.eval()  # the probe's features are read in eval mode too
    probe = SynthesisProbe.build(
        teacher, model_data, InputMap(data, model_data), torch.device("cpu")
    )
    assert probe is not None
    real_x, real_y = model_data.x_test, model_data.y_test
    real_f, real_c = probe.features(real_x)
    real_p = predict(teacher, real_x).softmax(1)
    x, joined = pooled(args.run, args.images)
    fake_f, fake_c = probe.features(probe.to_model(x))
    fake_p = predict(teacher, probe.to_model(x)).softmax(1)
    print(f"pool {len(x)} images; teacher's class now = when joined: "
          f"{float((fake_c == joined).float().mean()):.3f}")  # fmt: skip
    near = nearest_labels(fake_f, real_f, real_y)
    print("class | pool share | top p pool / real | runner-up pool / real | "
          "nearest real same class | commonest other (share)")  # fmt: skip
    for c in range(model_data.num_classes):
        f, r = fake_c == c, real_c == c
        other, share = commonest_other(near[f], c)
        print(f"{c} | {float(f.float().mean()):.3f} | "
              f"{float(fake_p[f].amax(1).mean()):.2f} / {float(real_p[r].amax(1).mean()):.2f} | "
              f"{runner_up(fake_p[f])} / {runner_up(real_p[r])} | "
              f"{float((near[f] == c).float().mean()):.2f} | {other} ({share:.2f})")  # fmt: skip
    if args.quarters:
        confidence_quarters(fake_p, fake_c, near)
    if args.student:
        student_report(args.run, data, x, fake_p)


if __name__ == "__main__":
    main()

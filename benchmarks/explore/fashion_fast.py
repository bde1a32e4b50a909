"""Exploration, not a results benchmark: single-run variants of the Fashion-MNIST presets of
`nayer` and `fast`, which end at 92.5–92.8 % of the teacher against issue 16's 93 %. Usage:
`python benchmarks/explore/fashion_fast.py [FIRST LAST]` runs cases FIRST..LAST-1.

Teacher: the zoo's `lenet5` (runs/zoo/fashion-mnist/lenet5, `python benchmarks/zoo.py`), the
teacher of `benchmarks/speed.py`. One JSON line per run, appended to
benchmarks/explore/fashion_fast.jsonl (committed). Its `replay_mix` rows ran an option since
removed (mixup of the replays: docs/methods.md); their cases are no longer here.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))  # benchmarks/common.py
from common import log_line

import dfkd

T = "runs/zoo/fashion-mnist/lenet5"
BALANCE = ["plugins=[{name: class_balance}]"]
CASES = [
    ("nayer", ["distill_terms.kd_kl.T=1"]),
    ("nayer", ["distill_terms.kd_kl.T=2"]),
    ("nayer", ["source.args.replay_shift=2", "source.args.shift=2"]),
    ("nayer", ["source.args.bank=65536"]),
    ("nayer", ["synth_terms.stat_match.weight=20"]),
    ("nayer", ["synth_terms.decision_adversarial.weight=3"]),
    ("nayer", ["kd_steps=100", "rounds=96", "warmup_rounds=16", "eval_every=5"]),
    ("fast", ["distill_terms.kd_kl.T=1"]),
    ("fast", ["source.args.replay_shift=2", "source.args.shift=2"]),
    # class-balanced distillation, which lifts fast on the zoo's BatchNorm teachers
    ("nayer", BALANCE),
    ("fast", BALANCE),
    # soft targets sharpened to a per-batch logit std of at least 4 (fast's presets since)
    ("nayer", ["distill_terms.kd_kl.min_teacher_std=4.0"]),
]


def main() -> None:
    first, last = (int(a) for a in sys.argv[1:3]) if len(sys.argv) > 2 else (0, len(CASES))
    for method, over, *extra in CASES[first:last]:
        plugins = extra[0] if extra else None
        t0 = time.perf_counter()
        m = dfkd.distill(T, "lenet5_half", method, "fashion-mnist", overrides=over,
                         plugins=plugins, progress=False)  # fmt: skip
        log_line(Path(__file__).with_suffix(".jsonl"), {
            "method": method, "overrides": over, "plugins": plugins or [],
            "acc": m["student_accuracy"],
            "acc_last5": m["acc_last5"], "teacher": m["teacher_accuracy"],
            "wall_s": round(time.perf_counter() - t0, 1),
            "curve": [round(h["student_accuracy"], 4) for h in m["history"]],
        })  # fmt: skip


if __name__ == "__main__":
    main()

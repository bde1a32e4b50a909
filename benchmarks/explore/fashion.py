"""Exploration, not a results benchmark: single-run variants of the Fashion-MNIST presets of the
methods that missed issue 3's targets (DFAD and DAFL relative to the presets of commit 7d3f39e;
the pixel methods relative to the current presets). Usage: `python benchmarks/explore/fashion.py
[FIRST LAST]` runs cases FIRST..LAST-1.

Needs the teacher of `python benchmarks/datafree.py` (runs/bench-datafree/fashion-mnist/teacher).
One JSON line per run, appended to benchmarks/explore/fashion.jsonl (committed).
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))  # benchmarks/common.py
from common import log_line

import dfkd

T = "runs/bench-datafree/fashion-mnist/teacher"
KL = [
    "synth_terms.adversarial.criterion=kl",
    "distill_terms={kd_kl: {weight: 1.0, T: 1.0}}",
    "distill_terms.kd_l1.weight=0",
]
# the dfad preset of 7d3f39e: light generator (Adam 1e-3), 300 rounds × 5 steps, L1 + balance 5
DFAD = ["source.args.lr_schedule=constant", "synth_terms.adversarial.criterion=l1",
        "distill_terms={kd_l1: {weight: 1.0}}", "distill_terms.kd_kl.weight=0"]  # fmt: skip
REPLAY = ["source.args.replay_shift=2", "source.args.replay_flip=true"]
CASES = [
    ("dfad", [*DFAD, "optimizer.lr=0.05", "source.args.lr_schedule=cosine"]),
    ("dfad", [*DFAD, *KL, "source.args.lr_schedule=cosine"]),
    ("dafl", ["rounds=800", "eval_every=40"]),
    ("dafl", ["source.args.lr=0.01", "rounds=200", "eval_every=10"]),
    # the pixel methods without a class prior draw 5–15 % per class: add the balance term
    ("bn_stats", ["synth_terms.info_entropy.weight=5"]),
    ("spectral", ["synth_terms.info_entropy.weight=5"]),
    # second pass (relative to the presets of commit 33c7245)
    ("dafl", ["distill_terms.kd_kl.T=4"]),
    ("dafl", ["distill_terms.kd_kl.T=4", "synth_terms.one_hot.weight=0.3"]),
    ("dfad", ["source.args.bank=16384"]),
    ("dfad", ["rounds=600", "eval_every=30"]),
    ("bn_stats", ["distill_terms.kd_kl.T=4"]),
    ("spectral", ["distill_terms.kd_kl.T=4", "synth_terms.stat_match.weight=1"]),
    ("bn_stats", ["distill_terms.kd_kl.T=4", "g_steps=200"]),
    # the pixel methods replay ~10k images 50 times each: augment the replayed images
    ("bn_stats", REPLAY),
    ("dafl", ["distill_terms.kd_kl.T=4", *REPLAY]),
    ("dafl", ["distill_terms.kd_kl.T=4", "source.args.lr_schedule=cosine"]),
    ("dafl", ["distill_terms.kd_kl.T=10"]),
    ("dafl", ["distill_terms.kd_kl.T=4", "source.args.bank=65536"]),
    ("dafl", ["distill_terms.kd_kl.T=4", "source.args.model=dafl_generator"]),
    ("dafl", ["distill_terms.kd_kl.T=4", "optimizer.lr=0.002"]),  # the paper's student rate
    ("dafl", ["distill_terms.kd_kl.T=4", "kd_steps=10"]),
]

if __name__ == "__main__":
    lo, hi = (int(a) for a in sys.argv[1:3]) if len(sys.argv) > 2 else (0, len(CASES))
    for m, o in CASES[lo:hi]:
        t = time.time()
        stats = "runs/bench-datafree/fashion-mnist/stats.safetensors" if m == "spectral" else None
        r = dfkd.distill(T, "lenet5_half", m, "fashion-mnist", overrides=o, stats=stats,
                         progress=False)  # fmt: skip
        curve = [round(h["student_accuracy"], 4) for h in r["history"]]
        hist = [round(v, 3) for v in r["synthetic_class_histogram"]]
        log_line(Path(__file__).with_name("fashion.jsonl"),
                 {"method": m, "overrides": o, "acc": r["student_accuracy"],
                  "wall_s": round(time.time() - t, 1), "curve": curve, "hist": hist})  # fmt: skip

"""Exploration, not a results benchmark: cost and accuracy of first-guess CPU presets on MNIST-10k.

    python benchmarks/explore/mnist10k.py --cases first|second|dfad|tune

Needs the teacher from `python benchmarks/foundation.py`. Output: one JSON line per run
appended to ``benchmarks/explore/mnist10k-CASES.jsonl`` (committed for all four case sets).
Single seed. The tuned presets and the data-free benchmark are in benchmarks/datafree.py.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))  # benchmarks/common.py
from common import log_line

import dfkd

T = "runs/bench-foundation/mnist10k-e20-s0/teacher"
common = ["batch_size=256", "eval_every=25", "checkpoint_every=1000"]
gen = ["source.args.model=light_generator", "source.args.nz=64"]
cases = {
    "dfq": [*gen, "rounds=200", "kd_steps=5", "optimizer.lr=0.05"],
    "dfad": [*gen, "rounds=200", "kd_steps=5", "optimizer.lr=0.1"],
    "dafl": [*gen, "rounds=200", "kd_steps=5", "source.args.lr=0.01", "optimizer.lr=0.01"],
    "deepinversion": [
        "source.args.synth_batch_size=256",
        "source.args.bank=8192",
        "g_steps=100",
        "kd_steps=50",
        "rounds=25",
        "eval_every=5",
        "distill_terms.kd_kl.T=4",
        "optimizer.lr=0.05",
    ],
    "bn_stats": [
        "source.args.synth_batch_size=256",
        "g_steps=100",
        "kd_steps=50",
        "rounds=25",
        "eval_every=5",
    ],
}
# second set: longer dfq, dfad with a slower generator, dafl with reuse_drawn (its default now)
gen2 = ["batch_size=256", "eval_every=25", "checkpoint_every=1000", *gen]
second = [
    ("dfq", [*gen2, "rounds=500", "kd_steps=5", "optimizer.lr=0.05", "eval_every=50"]),
    ("dfad", [*gen2, "rounds=200", "kd_steps=5", "optimizer.lr=0.05", "source.args.lr=2e-4"]),
    ("dafl", [*gen2, "rounds=200", "kd_steps=5", "source.args.lr=0.01", "optimizer.lr=0.01"]),
]
# third set: why DFAD collapses on this budget, and what keeps it up (issue 3)
kl = [
    "synth_terms.adversarial.criterion=kl",
    "distill_terms={kd_kl: {weight: 1.0, T: 1.0}}",
    "distill_terms.kd_l1.weight=0",
]
gen3 = [*gen2, "rounds=200"]
dfad = [
    ("dfad", [*gen3, "optimizer.lr=0.1", "source.args.bank=4096"]),
    ("dfad", [*gen3, "optimizer.lr=0.1", "source.args.bank=16384"]),
    ("dfad", [*gen2, "rounds=300", "optimizer.lr=0.01"]),
    ("dfad", [*gen2, "rounds=300", "optimizer.lr=0.02"]),
    ("dfad", [*gen3, "optimizer.lr=0.1", *kl]),
    ("dfad", [*gen3, "optimizer.lr=0.1", "synth_terms.info_entropy.weight=5"]),
    ("dfad", [*gen3, "optimizer.lr=0.1", "source.args.lr_schedule=cosine"]),
    ("dfad", [*gen3, "optimizer.lr=0.1", "source.args.lr_schedule=cosine", *kl]),
]
# fourth set: DAFL's decline and DFQ's margin, spelled out so that later presets do not move it
dafl4 = [*gen2, "source.args.lr=0.01", "rounds=400", "kd_steps=5", "eval_every=20",
         "optimizer.lr=0.01", "optimizer.schedule=cosine"]  # fmt: skip
tune = [
    ("dafl", [*dafl4, "source.args.lr_schedule=cosine"]),
    ("dafl", [*dafl4, "source.args.lr_schedule=cosine", "distill_terms.kd_kl.T=4"]),
    ("dfq", [*gen2, "optimizer.lr=0.05", "kd_steps=10", "rounds=400", "eval_every=20"]),
    ("dafl", [*dafl4, "source.args.bank=16384"]),
    ("dafl", [*dafl4, "source.args.bank=16384", "optimizer.schedule=constant"]),
    ("dafl", [*dafl4, "source.args.bank=16384", "rounds=200", "eval_every=10"]),
    ("dafl", [*dafl4, "source.args.bank=16384", "source.args.lr=0.002"]),
]
ap = argparse.ArgumentParser()
ap.add_argument("--cases", choices=["first", "second", "dfad", "tune"], default="first")
args = ap.parse_args()
runs = {
    "first": [(m, common + o) for m, o in cases.items()],
    "second": second,
    "dfad": [(m, ["kd_steps=5", *o]) for m, o in dfad],
    "tune": tune,
}[args.cases]
for m, o in runs:
    t = time.time()
    r = dfkd.distill(T, "lenet5_half", m, "mnist10k", overrides=o, progress=False)
    curve = [(h["round"], round(h["student_accuracy"], 4)) for h in r["history"]]
    log_line(
        Path(__file__).with_name(f"mnist10k-{args.cases}.jsonl"),
        {
            "method": m,
            "overrides": o,
            "acc": r["student_accuracy"],
            "wall_s": round(time.time() - t, 1),
            "synth_s": r["synthesis_s"],
            "distill_s": r["distill_s"],
            "curve": curve,
            "hist": [round(v, 3) for v in r["synthetic_class_histogram"]],
        },
    )

"""Exploration, not a results benchmark: cost and accuracy of first-guess CPU presets on MNIST-10k.

Needs the teacher from `python benchmarks/foundation.py`. Output: one JSON line per run
(committed as benchmarks/results/explore_mnist10k.jsonl for the first case set and
explore_mnist10k_2.jsonl for `--cases second`). Single seed; the tuned presets and the
real data-free benchmark come with issue 3.
"""

import argparse
import json
import time

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
ap = argparse.ArgumentParser()
ap.add_argument("--cases", choices=["first", "second"], default="first")
args = ap.parse_args()
runs = [(m, common + o) for m, o in cases.items()] if args.cases == "first" else second
for m, o in runs:
    t = time.time()
    r = dfkd.distill(T, "lenet5_half", m, "mnist10k", overrides=o, progress=False)
    curve = [(h["round"], round(h["student_accuracy"], 4)) for h in r["history"]]
    print(
        json.dumps(
            {
                "method": m,
                "overrides": o,
                "acc": r["student_accuracy"],
                "wall_s": round(time.time() - t, 1),
                "synth_s": r["synthesis_s"],
                "distill_s": r["distill_s"],
                "curve": curve,
                "hist": [round(v, 3) for v in r["synthetic_class_histogram"]],
            }
        ),
        flush=True,
    )

"""Exploration, not a results benchmark: one ta_dfkd run with its MNIST-10k CPU preset, logging
the accuracy curve and the GMM kept fraction (issue 4's first check before its teacher-agnostic
benchmark, benchmarks/teacher_agnostic.py). Needs the teacher of `python benchmarks/datafree.py`.
Appends to benchmarks/explore/ta_dfkd.jsonl (committed). `python benchmarks/explore/ta_dfkd.py`
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))  # benchmarks/common.py
from common import log_line

import dfkd

t = time.time()
r = dfkd.distill(
    "runs/bench-datafree/mnist10k/teacher", "lenet5_half", "ta_dfkd", "mnist10k", progress=False
)
curve = [
    (h["round"], round(h["student_accuracy"], 4), round(h["gmm_selection/kept_fraction"], 3))
    for h in r["history"]
]
log_line(
    Path(__file__).with_name("ta_dfkd.jsonl"),
    {
        "acc": r["student_accuracy"],
        "wall": round(time.time() - t, 1),
        "synth": r["synthesis_s"],
        "distill": r["distill_s"],
        "curve": curve,
        "hist": [round(v, 3) for v in r["synthetic_class_histogram"]],
    },
)

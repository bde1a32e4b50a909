"""Where the fast-synthesis methods spend their time on this CPU.

Each of ``fast``, ``nayer``, ``cmi`` (and ``dfq`` for reference) distils the zoo's ``lenet5``
teacher on MNIST-10k for a short run of its preset (``--rounds``, warm-up 2 rounds) under
``cProfile``; printed per method: the loop's wall, synthesis and distillation seconds, and the
functions with the most time of their own (share of the profiled total). Output committed as
``benchmarks/results/profile_fast.txt``:

    python benchmarks/profile_fast.py > benchmarks/results/profile_fast.txt
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
from pathlib import Path

import torch
from zoo import zoo_teacher

import dfkd

METHODS = ("fast", "nayer", "cmi", "dfq")


def profile(method: str, teacher: Path, rounds: int, top: int) -> str:
    """One short run of ``method`` under cProfile; its summary and top functions as text."""
    over = [f"rounds={rounds}", "eval_every=1000", "checkpoint_every=1000"]
    if method != "dfq":
        over.append("warmup_rounds=2")
    prof = cProfile.Profile()
    with tempfile.TemporaryDirectory() as out:
        prof.enable()
        m = dfkd.distill(teacher, "lenet5_half", method, "mnist10k", out=out, overrides=over,
                         progress=False)  # fmt: skip
        prof.disable()
    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    lines = [ln for ln in text.getvalue().splitlines() if ln.strip()]
    head = (f"== {method}: {rounds} rounds, wall {m['wall_s']:.1f} s (synthesis "
            f"{m['synthesis_s']:.1f} s, distill {m['distill_s']:.1f} s)")  # fmt: skip
    start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
    return "\n".join([head, *lines[start : start + top + 1]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--top", type=int, default=14)
    ap.add_argument("--zoo", default="runs/zoo")
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    teacher = zoo_teacher("lenet5", "mnist10k", Path(args.zoo))
    for method in args.methods:
        print(profile(method, teacher, args.rounds, args.top), flush=True)


if __name__ == "__main__":
    main()

"""What ``speed.compile`` (inductor), ``speed.channels_last`` and bfloat16 mixed precision buy on
this CPU: synthesis
and student images per second of ``fast``, ``nayer`` and ``dfq`` with the zoo's MNIST-10k
``lenet5``, ``vgg-bn`` and ``resnet-bn`` teachers (student ``lenet5_half``, the mnist10k
presets, batch 128), each setting in a fresh process with an empty inductor cache.

Each cell is one run of ``--short + --long`` rounds whose every round is timed (the engine's
own step timers, read from the evaluation curve): the steady rate is the median of the last
``--long`` rounds (what a long run gets), and ``first s`` is what the first ``--short`` rounds
cost beyond that rate (compilation and warm-up: what every run pays once).

    python benchmarks/speed_options.py [--methods fast nayer dfq] [--teachers ...]

Writes ``benchmarks/results/speed_options.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median
from typing import Any

from common import header, run_meta

from dfkd.io.files import atomic_write_text

FP32, BF16 = ["fabric.precision=32-true"], ["fabric.precision=bf16-mixed"]
SETTINGS = {
    "plain": FP32,
    "channels_last": ["speed.channels_last=true", *FP32],
    "compile": ["speed.compile=true", *FP32],
    "compile+channels_last": ["speed.compile=true", "speed.channels_last=true", *FP32],
    "bf16": BF16,
    "bf16+channels_last": ["speed.channels_last=true", *BF16],
    "bf16+compile+channels_last": ["speed.compile=true", "speed.channels_last=true", *BF16],
}
BATCH = 128
METHODS, TEACHERS = ["fast", "nayer", "dfq"], ["lenet5", "vgg-bn", "resnet-bn"]
CHILD = """
import json, sys
sys.path.insert(0, "benchmarks")
from pathlib import Path
import dfkd
from zoo import zoo_teacher
method, teacher, rounds, g, k, batch, *over = sys.argv[1:]
t = zoo_teacher(teacher, "mnist10k", Path("runs/zoo"))
over = [f"rounds={rounds}", "warmup_rounds=0", f"g_steps={g}", f"kd_steps={k}",
        f"batch_size={batch}", f"source.args.synth_batch_size={batch}",
        "eval_every=1", f"checkpoint_every={rounds}", *over]
m = dfkd.distill(t, method=method, dataset="mnist10k", overrides=over, progress=False)
rows = [{k: r[k] for k in ("synthesis_s", "distill_s")} for r in m["history"]]
print(json.dumps(rows))
"""


def child(method: str, teacher: str, rounds: int, g: int, k: int, over: list[str]) -> list[dict]:
    """One run in a fresh process (an empty inductor cache): its cumulative synthesis and
    student seconds after each round."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        cmd = [sys.executable, "-c", CHILD, method, teacher, str(rounds), str(g), str(k),
               str(BATCH), *over]  # fmt: skip
        for _ in range(2):  # once more after a failure (an inductor worker can die)
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode == 0:
                return json.loads(done.stdout.strip().splitlines()[-1])
    lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
    raise RuntimeError(lines[-1][:200])


def cell(method: str, teacher: str, setting: str, args: argparse.Namespace) -> dict[str, Any]:
    g, k = args.g_steps, args.kd_steps
    row = {"method": method, "teacher": teacher, "setting": setting, "g_steps": g, "kd_steps": k}
    try:
        rows = child(method, teacher, args.short + args.long, g, k, SETTINGS[setting])
    except RuntimeError as e:  # recorded, not hidden: the table says the setting failed
        return {**row, "synth_img_per_s": None, "student_img_per_s": None, "first_s": None,
                "error": str(e)}  # fmt: skip
    synth, student = (median(per_round(rows, key)[args.short :]) for key in TIMERS)
    head = rows[args.short - 1]
    first = head["synthesis_s"] + head["distill_s"] - args.short * (synth + student)
    return {**row, "synth_img_per_s": g * BATCH / synth if synth > 0 else None,
            "student_img_per_s": k * BATCH / student if student > 0 else None,
            "first_s": first}  # fmt: skip


TIMERS = ("synthesis_s", "distill_s")


def per_round(rows: list[dict[str, float]], key: str) -> list[float]:
    """Each round's seconds of one timer, from the cumulative figures after each round."""
    ends = [r[key] for r in rows]
    return [b - a for a, b in zip([0.0, *ends[:-1]], ends, strict=True)]


def markdown(doc: dict[str, Any]) -> list[str]:
    lines = header("Compile, channels_last and bfloat16 on this CPU", doc["meta"],
                   f"Student `lenet5_half`, MNIST-10k presets, batch {BATCH}, "
                   f"{doc['meta']['g_steps']} synthesis and {doc['meta']['kd_steps']} student "
                   "steps a round; steady images/s (the median of the last "
                   f"{doc['meta']['long']} of {doc['meta']['short'] + doc['meta']['long']} "
                   "rounds, each setting a fresh process with an empty inductor cache), and the "
                   f"seconds the first {doc['meta']['short']} rounds cost beyond that "
                   "(compilation, warm-up). `×` = the round's time under `plain` over its time "
                   "under the setting.")  # fmt: skip
    lines += ["| method | teacher | setting | synth img/s | student img/s | round × plain "
              "| first s |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    again = doc["meta"].get("remeasured", [])
    for command in reversed([again] if isinstance(again, str) else again):  # older: one string
        lines[4:4] = [f"Cells re-measured with `{command}`.", ""]
    for r in sorted(doc["rows"], key=order):
        base = next(p for p in doc["rows"] if p["method"] == r["method"]
                    and p["teacher"] == r["teacher"] and p["setting"] == "plain")  # fmt: skip
        lines.append(f"| {r['method']} | {r['teacher']} | {r['setting']} "
                     f"| {_f(r['synth_img_per_s'])} | {_f(r['student_img_per_s'])} "
                     f"| {_ratio(round_time(base), round_time(r))} "
                     f"| {_f(r['first_s'], 1)} |")  # fmt: skip
    failed = [r for r in doc["rows"] if r.get("error")]
    lines += ["", *[f"Failed twice: {r['method']} / {r['teacher']} / {r['setting']}: "
                    f"`{r['error']}`" for r in failed]] if failed else []  # fmt: skip
    return lines


def round_time(r: dict[str, Any]) -> float | None:
    """Seconds of one steady round (``None`` where a rate is missing: noise over the steps)."""
    parts = ((r["g_steps"], r["synth_img_per_s"]), (r["kd_steps"], r["student_img_per_s"]))
    if any(n and not v for n, v in parts):
        return None
    return sum(n * BATCH / v for n, v in parts if n)


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if not a or not b else f"{a / b:.2f}"


def _f(v: float | None, digits: int = 0) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--teachers", nargs="+", default=TEACHERS)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--short", type=int, default=2)
    ap.add_argument("--long", type=int, default=6)
    ap.add_argument("--g-steps", type=int, default=3)
    ap.add_argument("--kd-steps", type=int, default=6)
    ap.add_argument("--results", default=str(Path(__file__).parent / "results"))
    ap.add_argument(
        "--merge",
        action="store_true",
        help="re-measure these cells in the committed table, keep its other rows",
    )
    args = ap.parse_args()
    command = " ".join(["python benchmarks/speed_options.py", *sys.argv[1:]])
    meta = run_meta(command, short=args.short, long=args.long, g_steps=args.g_steps,
                    kd_steps=args.kd_steps)  # fmt: skip
    doc: dict[str, Any] = {"meta": meta, "rows": []}
    kept = Path(args.results) / "speed_options.json"
    if args.merge and kept.exists():  # re-measure some cells, keep the others
        doc = json.loads(kept.read_text())
        again = doc["meta"].get("remeasured", [])
        doc["meta"]["remeasured"] = [*([again] if isinstance(again, str) else again), command]
    for method in args.methods:
        for teacher in args.teachers:
            for setting in args.settings:
                new = cell(method, teacher, setting, args)
                doc["rows"] = [r for r in doc["rows"] if key(r) != key(new)] + [new]
                print(json.dumps(new), flush=True)
                write(doc, Path(args.results))  # a stopped run keeps its rows


def order(row: dict[str, Any]) -> tuple[int, int, int]:
    """A row's place in the table: methods, teachers and settings in their default order."""
    m, t, s = key(row)
    place = lambda v, seq: seq.index(v) if v in seq else len(seq)  # noqa: E731
    return place(m, METHODS), place(t, TEACHERS), place(s, list(SETTINGS))


def key(row: dict[str, Any]) -> tuple[str, str, str]:
    return row["method"], row["teacher"], row["setting"]


def write(doc: dict[str, Any], res: Path) -> None:
    atomic_write_text(res / "speed_options.json", json.dumps(doc, indent=1) + "\n")
    atomic_write_text(res / "speed_options.md", "\n".join(markdown(doc)) + "\n")


if __name__ == "__main__":
    main()

"""Exploration behind the backdoor escapes (not a benchmark): options of the inverted-trigger
plug-in (``trigger_filter``) on the backdoor teachers of ``benchmarks/backdoor.py``, at that
benchmark's budget (1,500 student steps, ``dfq`` unless ``--method``, the same teachers under
``runs/bench-backdoor``).

    python benchmarks/explore/backdoor.py [--teachers mnist10k-square ...] [--method dfq]
                                          [--seed 0] [NAME ...]

Appends one JSON line per case to ``benchmarks/explore/backdoor.jsonl``: the final student's ID
accuracy and attack success rate, and what the plug-in logged (suspected target, filtered share).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))  # benchmarks/common.py, backdoor.py
import torch
from backdoor import STUDENT, TEACHERS, make_teacher, trigger_region
from common import budget_overrides, log_line

import dfkd
from dfkd.evaluation.domains import Trigger
from dfkd.plugins.base import register_plugin
from dfkd.plugins.trigger_filter import TriggerFilter
from dfkd.sources.base import SourceEnv

OUT = Path("runs/bench-backdoor")
LOG = Path(__file__).with_name("backdoor.jsonl")
STEPS = 1500

#: trigger_filter options tried (the benchmark's columns are ``mode=relabel`` and ``mode=filter``
#: at portion 0.2, weight 1)
CASES = {
    "plain": "",  # no plug-in: the reference on a retrained teacher
    "both": "trigger_filter:mode=both",
    "relabel-p0.5": "trigger_filter:mode=relabel,portion=0.5",
    "relabel-w4": "trigger_filter:mode=relabel,weight=4.0",
    "both-p0.5-w4": "trigger_filter:mode=both,portion=0.5,weight=4.0",
    "relabel-p1-w1": "trigger_filter:mode=relabel,portion=1.0",
    "both-p0.5": "trigger_filter:mode=both,portion=0.5",
    "both-p1": "trigger_filter:mode=both,portion=1.0",
    "both-p1-w2": "trigger_filter:mode=both,portion=1.0,weight=2.0",
    "relabel-erased": "trigger_filter:mode=relabel,answer=erased",
    "relabel-erased-p1": "trigger_filter:mode=relabel,portion=1.0,answer=erased",
    "both-erased-p1": "trigger_filter:mode=both,portion=1.0,answer=erased",
    # the scan's mask as one α for the whole image (a blended trigger's shape)
    "blendinv-both-p1": "trigger_filter:mode=both,portion=1.0,inversion=blend",
    "blendinv-relabel": "trigger_filter:mode=relabel,inversion=blend",
    "blendinv-filter": "trigger_filter:mode=filter,inversion=blend",
    # the ceiling of the inverted-trigger escapes: the plug-in handed the *true* trigger
    "oracle-both-p1": "oracle_trigger_filter:mode=both,portion=1.0",
    "oracle-filter": "oracle_trigger_filter:mode=filter",
    # the target's trigger inverted again from the first distillation samples, erased wider
    "rescan-both-p1-d2": "trigger_filter:mode=both,portion=1.0,rescan=true,dilate=2",
    "rescan-filter-d2": "trigger_filter:mode=filter,rescan=true,dilate=2",  # = +tf_rescan
    "rescan-both-p1": "trigger_filter:mode=both,portion=1.0,rescan=true",
    "rescan-both-p1-d2-kept": "trigger_filter:mode=both,portion=1.0,rescan=true,dilate=2,"
    "relabel_flagged=false",
    "rescan-both-p1-d2-hard": "trigger_filter:mode=both,portion=1.0,rescan=true,dilate=2,"
    "relabel_flagged=false,hard_stamp=true",
}


@register_plugin("oracle_trigger_filter")
class OracleTriggerFilter(TriggerFilter):
    """``trigger_filter`` with the teacher's true trigger and target in place of the scan's
    (set through :data:`TRUE_TRIGGER` before the run): what a perfect inversion would give."""

    def setup(self, env: SourceEnv) -> None:
        trigger = Trigger.parse(TRUE_TRIGGER[0])
        space, dev = env.data, env.fabric.device
        self.inversion = "blend" if trigger.name == "blend" else "patch"
        mask = trigger_region(trigger, space.input_shape)
        pattern = trigger.pixels(torch.zeros((1, *space.input_shape)))[0]
        if trigger.name == "blend":  # (1 − α)·x + α·p: the mask is α, the pattern p
            alpha = float(trigger.args.get("alpha", 0.2))
            mask, pattern = mask * alpha, pattern / alpha
        self.target, self.index = trigger.target, float("nan")
        self.register_buffer("mask", mask.to(dev))
        self.register_buffer("pattern", pattern.to(dev))
        self._env = (env.teacher, env.student, space, env.seed)


#: the trigger spec of the teacher being distilled (read by the oracle plug-in)
TRUE_TRIGGER = [""]
#: the mask a trigger_filter run acted with last (its set-up scan's, or its rescan's)
ACTED: dict[str, torch.Tensor] = {}
_setup, _invert_again = TriggerFilter.setup, TriggerFilter._invert_again


def _record_setup(self: TriggerFilter, env: SourceEnv) -> None:
    _setup(self, env)
    ACTED["mask"] = self.mask.detach().cpu().clone()


def _record_rescan(self: TriggerFilter, samples: torch.Tensor) -> None:
    _invert_again(self, samples)
    ACTED["mask"] = self.mask.detach().cpu().clone()


TriggerFilter.setup, TriggerFilter._invert_again = _record_setup, _record_rescan  # type: ignore


def mass_in_trigger(mask: torch.Tensor, spec: str) -> float:
    """The share of ``mask``'s mass on the pixels the true trigger ``spec`` writes."""
    region = trigger_region(Trigger.parse(spec), (1, *mask.shape))
    return round(float((mask * region).sum() / mask.sum()), 3)


def run_case(name: str, teacher: str, method: str = "dfq", seed: int = 0) -> dict:
    """Distil ``teacher`` with ``method`` and the plug-in options ``name``; the log record."""
    dataset, trigger = TEACHERS[teacher]
    TRUE_TRIGGER[0] = trigger
    tdir = make_teacher(teacher, OUT)
    out = OUT / "explore" / teacher / (name if method == "dfq" else f"{method}-{name}")
    out = out if seed == 0 else out.with_name(f"{out.name}-s{seed}")
    plugins = [CASES[name]] if CASES[name] else []
    ACTED.clear()
    m = dfkd.distill(tdir, STUDENT, method, dataset, out=out, plugins=plugins,
                     overrides=budget_overrides(method, dataset, STEPS), trigger=trigger,
                     overwrite=True, progress=False, seed=seed)  # fmt: skip
    last = m["history"][-1]
    return {"teacher": teacher, "case": name, "method": method, "plugin": CASES[name],
            "steps": STEPS, **({"seed": seed} if seed else {}),
            "mask_in_trigger": mass_in_trigger(ACTED["mask"], trigger) if ACTED else None,
            "student_accuracy": round(m["student_accuracy"], 4),
            "attack_success_rate": round(m["attack_success_rate"], 4),
            "target": _logged(last, "target"), "filtered": _logged(last, "filtered"),
            "wall_s": round(m["wall_s"], 1)}  # fmt: skip


def _logged(record: dict, key: str) -> float | None:
    """What either filter plug-in logged under ``key`` in a history record."""
    return record.get(f"trigger_filter/{key}", record.get(f"oracle_trigger_filter/{key}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="*", help=f"of {', '.join(CASES)} (default: all)")
    ap.add_argument("--teachers", nargs="+", choices=list(TEACHERS), default=["mnist10k-square"])
    ap.add_argument("--method", default="dfq", help="a data-free method (default: dfq)")
    ap.add_argument("--seed", type=int, default=0, help="the run's seed (default 0)")
    args = ap.parse_args()
    if unknown := set(args.cases) - set(CASES):
        ap.error(f"unknown cases {sorted(unknown)}: choose from {', '.join(CASES)}")
    for teacher in args.teachers:
        for name in args.cases or list(CASES):
            rec = run_case(name, teacher, args.method, args.seed)
            log_line(LOG, rec)
            print(rec, flush=True)


if __name__ == "__main__":
    main()

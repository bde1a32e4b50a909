"""Exploration behind the backdoor escapes (not a benchmark): how close the trigger that
``trigger_filter`` recovers is to the true one, on the backdoor teachers of
``benchmarks/backdoor.py`` (trained once under ``runs/bench-backdoor``).

    python benchmarks/explore/trigger_quality.py [--teachers NAME ...]

(The log's ``inversion: blend`` rows ran the plug-in's blend-shaped scan, since removed:
docs/methods.md keeps their figures.)
                                                 [--scan-steps N] [--real-probes]

For each teacher: the plug-in's scan at its defaults (seed 0); the share of the recovered
mask's mass inside the true trigger's region (square and trojan patches; 1 for the full-image
blend); the teacher's attack success rate on the real test images of other classes with the
*recovered* trigger stamped on; and with the *true* trigger stamped and then the recovered
mask's region erased (what the filter relies on); the share of the scan's synthetic probes the
teacher sends to the target, without and with the true trigger; and the correlation of the
recovered pattern with the true one inside its region (undefined for a plain square). One
JSON line per teacher, appended to ``benchmarks/explore/trigger_quality.jsonl``.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1]))  # benchmarks/common.py, backdoor.py
from backdoor import TEACHERS, make_teacher, trigger_region
from common import log_line

from dfkd.api import load_checked
from dfkd.data.base import load_dataset
from dfkd.engine.invert import inverted_probes
from dfkd.evaluation.domains import Trigger, from_pixels, to_pixels
from dfkd.plugins.trigger_filter import TriggerFilter
from dfkd.sources.base import SourceEnv

OUT = Path("runs/bench-backdoor")
LOG = Path(__file__).with_suffix(".jsonl")


def pattern_corr(plug: TriggerFilter, trigger: Trigger, region: torch.Tensor) -> float:
    """The correlation, inside the true trigger's region, of the recovered pattern with the
    pixels the true trigger writes on a mid-grey image."""
    pattern = plug.pattern
    written = trigger.pixels(torch.full((1, *pattern.shape), 0.5))[0]
    inside = region.bool().expand_as(pattern)
    pair = torch.stack([pattern[inside].cpu(), written[inside]])
    return round(float(torch.corrcoef(pair)[0, 1]), 3)


def asr(teacher: torch.nn.Module, x: torch.Tensor, target: int) -> float:
    """The share of ``x`` the teacher sends to ``target``."""
    with torch.no_grad():
        return float((teacher(x).argmax(1) == target).float().mean())


def measure(name: str, scan_steps: int = 300, real: bool = False) -> dict:
    """The scan of one teacher and how its recovered trigger relates to the true one."""
    dataset, spec = TEACHERS[name]
    trigger = Trigger.parse(spec)
    teacher, data = load_checked(make_teacher(name, OUT), load_dataset(dataset), None, "teacher")
    teacher.eval().requires_grad_(False)
    from lightning_fabric import Fabric

    plug = TriggerFilter(mode="filter", scan_steps=scan_steps)
    fabric = Fabric(accelerator="cpu", devices=1)
    invert = partial(inverted_probes, teacher, data, fabric=fabric)
    env = SourceEnv(fabric=fabric, data=data, teacher=teacher, student=teacher, batch_size=64,
                    seed=0, invert=invert)  # fmt: skip
    t0 = time.perf_counter()
    if real:  # scan from real training images of other classes in place of inverted probes
        others = data.x_train[data.y_train != trigger.target][: plug.probes]
        env.invert = lambda n, steps: others
    plug.setup(env)
    mask = plug.mask
    region = trigger_region(trigger, data.input_shape)
    keep = data.y_test != trigger.target
    x = data.x_test[keep][:2000]
    px = to_pixels(x, data.mean, data.std)
    triggered = from_pixels(trigger.pixels(px), data.mean, data.std)
    probes = inverted_probes(teacher, data, plug.probes, plug.probe_steps)
    stamped = from_pixels(trigger.pixels(to_pixels(probes, data.mean, data.std)), data.mean,
                          data.std)  # fmt: skip
    return {
        "teacher": name, "inversion": "patch", "scan_steps": scan_steps, "real_probes": real,
        "suspected": plug.target,
        "anomaly_index": plug.index, "mask_l1": round(float(mask.sum()), 2),
        "mass_in_true_region": round(float((mask * region).sum() / mask.sum()), 3),
        "asr_true": asr(teacher, triggered, trigger.target),
        "asr_recovered": asr(teacher, plug.stamp(x), trigger.target),
        "asr_true_then_erased": asr(teacher, plug.erase(triggered), trigger.target),
        "probes_on_target": asr(teacher, probes, trigger.target),
        "asr_true_on_probes": asr(teacher, stamped, trigger.target),
        "pattern_corr": pattern_corr(plug, trigger, region),
        "scan_s": round(time.perf_counter() - t0, 1),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teachers", nargs="+", default=[t for t in TEACHERS if "mnist10k" in t])
    ap.add_argument("--scan-steps", type=int, default=300)
    ap.add_argument("--real-probes", action="store_true", help="scan from real images")
    args = ap.parse_args()
    for name in args.teachers:
        row = measure(name, args.scan_steps, args.real_probes)
        print(row, flush=True)
        log_line(LOG, row)


if __name__ == "__main__":
    main()

"""Where a generator method's time goes on this CPU, and what channels-last G saves.

Times (ms per call, batch 256, MNIST-sized 28×28) of the light and DAFL generators with and
without channels-last memory format, the lenet5 teacher forward and a lenet5_half student step;
then a 40-round DFQ run on MNIST-10k with `channels_last` false and true. Needs the teacher of
`python benchmarks/datafree.py`. Output committed as benchmarks/results/profile_generator.txt.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

import dfkd
from dfkd.models import create_generator, create_model

TEACHER = "runs/bench-datafree/mnist10k/teacher"


def ms(fn: Callable[[], object], n: int = 10) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1000


def main() -> None:
    torch.manual_seed(0)
    kw = {"num_classes": 10, "in_channels": 1, "image_size": 28}
    teacher, student = create_model("lenet5", **kw).eval(), create_model("lenet5_half", **kw)
    opt = torch.optim.SGD(student.parameters(), lr=0.01)
    for name, nz in (("light_generator", 64), ("dafl_generator", 256)):
        z = torch.randn(256, nz)
        for cl in (False, True):
            g = create_generator(name, nz=nz, out_channels=1, image_size=28).train()
            if cl:
                g = g.to(memory_format=torch.channels_last)
            with torch.no_grad():
                fwd = ms(lambda g=g, z=z: g(z))
            both = ms(lambda g=g, z=z: g(z).sum().backward())
            print(f"{name:16s} channels_last={cl!s:5s}  forward (no grad) {fwd:6.1f} ms  "
                  f"forward+backward {both:6.1f} ms", flush=True)  # fmt: skip
    x = torch.randn(256, 1, 28, 28)
    with torch.no_grad():
        print(f"teacher lenet5 forward {ms(lambda: teacher(x)):.1f} ms")

    def step() -> None:
        opt.zero_grad()
        student(x).logsumexp(1).mean().backward()
        opt.step()

    print(f"student lenet5_half forward+backward+step {ms(step):.1f} ms", flush=True)
    over = ["source.args.model=light_generator", "source.args.nz=64", "rounds=40", "kd_steps=5",
            "batch_size=256", "eval_every=40", "checkpoint_every=1000"]  # fmt: skip
    for cl in ("false", "true"):
        t = time.perf_counter()
        o = [*over, f"source.args.channels_last={cl}"]
        r = dfkd.distill(TEACHER, "lenet5_half", "dfq", "mnist10k", overrides=o, progress=False)
        wall, syn, dis = time.perf_counter() - t, r["synthesis_s"], r["distill_s"]
        print(f"dfq 40 rounds, channels_last={cl}: {wall:.1f} s "
              f"(synthesis {syn:.1f} s, distill {dis:.1f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

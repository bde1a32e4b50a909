"""Throughput on this CPU, and the engine's overhead over a bare loop.

1. Images per second of synthesis and of distillation for every data-free method (and ``kd``)
   at batch 256: LeNet-5 → LeNet-5-half on 28×28 gray images and ResNet-8 → ResNet-8 on 32×32×3
   (sklearn digits brought to those sizes: throughput depends on shapes, not on the pixels),
   with the MNIST-10k CPU presets for LeNet-5 and the CIFAR-10 configurations (the method
   defaults) for ResNet-8. Each method runs its steps per round (at most 10 of each) for a few
   rounds; the
   figures are the engine's own timers (synthesis: images through a synthesis step per second
   of synthesis; student: images through a student step per second of distillation).
2. The engine's overhead: ``kd`` and ``dfq`` through ``dfkd.distill`` against a bare,
   hand-written loop doing the same arithmetic (same models and seeds, batch, terms, optimisers
   and schedules), timed in the same process, alternating, best of ``--repeats``.

    python benchmarks/throughput.py [--repeats 3] [--small]

Writes ``benchmarks/results/throughput.{json,md}``. ``--small`` is the smoke test's size.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from common import header, run_meta

import dfkd
from dfkd.io.files import atomic_write_text
from dfkd.losses.bn import bn_stat_loss, channel_stats
from dfkd.losses.generator import adversarial_loss, information_entropy_loss, one_hot_loss
from dfkd.losses.kd import kl_div
from dfkd.methods import METHODS
from dfkd.models import create_generator, create_model

SETUPS = {  # name: (dataset, teacher, student, the presets used: a dataset's, or the defaults)
    "lenet5 28×28": ("digits:size=28", "lenet5", "lenet5_half", "mnist10k"),
    "resnet8 32×32×3": ("digits:size=32,channels=3", "resnet8", "resnet8", None),
}
#: need a statistics file (spectral) or another dataset (substitute); fast-2/10 are fast's k
SKIP = {"spectral", "substitute", "fast-2", "fast-10"}
BATCH = 256


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=4, help="rounds of each images/s run")
    p.add_argument("--steps", type=int, default=300, help="steps of each overhead run")
    p.add_argument("--small", action="store_true", help="smoke-test sizes")
    p.add_argument("--only", choices=["overhead"], help="rerun the overhead, keep the rates")
    p.add_argument("--results", default="benchmarks/results")
    return p.parse_args(argv)


def teacher_for(name: str, data: dfkd.Data) -> torch.nn.Module:
    """A teacher of the right shape with BatchNorm statistics of real images (throughput does
    not need a trained one)."""
    torch.manual_seed(0)
    c, h, w = data.input_shape
    net = create_model(name, num_classes=data.num_classes, in_channels=c, image_size=(h, w))
    with torch.no_grad():  # running statistics of real images, as a trained teacher has
        net.train()
        for i in range(0, len(data.x_train), 256):
            net(data.x_train[i : i + 256])
    return net.eval()


def methods() -> list[str]:
    data_free = [m for m in dfkd.list_methods() if METHODS.get(m).data_free]
    return ["kd", *(m for m in data_free if m not in SKIP)]


def rate_row(method: str, setup: str, args: argparse.Namespace) -> dict[str, Any]:
    """One method's images/s on one setup."""
    dataset, t_name, s_name, preset = SETUPS[setup]
    data = dfkd.load_dataset(dataset)
    cfg = dfkd.resolve_config(method, preset)
    batch = 16 if args.small else BATCH
    g, k = min(cfg.g_steps, 2 if args.small else 10), min(cfg.kd_steps, 2 if args.small else 10)
    over = [
        f"rounds={args.rounds}",
        "warmup_rounds=0",
        f"g_steps={g}",
        f"kd_steps={k}",
        f"batch_size={batch}",
        f"eval_every={args.rounds}",
        f"checkpoint_every={args.rounds}",
    ]
    if g:  # every synthesising source takes synth_batch_size
        over.append(f"source.args.synth_batch_size={batch}")
    m = dfkd.distill(teacher_for(t_name, data), s_name, method, data, config=cfg.to_dict(),
                     overrides=over, progress=False)  # fmt: skip
    synth = m["rounds"] * g * batch / m["synthesis_s"] if g else None
    student = m["steps"] * batch / m["distill_s"]
    return {"method": method, "setup": setup, "g_steps": g, "kd_steps": k,
            "synth_img_per_s": synth, "student_img_per_s": student}  # fmt: skip


# --- the bare loops ------------------------------------------------------------------------------


def _student(name: str, data: dfkd.Data, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    c, h, w = data.input_shape
    return create_model(name, num_classes=data.num_classes, in_channels=c, image_size=(h, w))


def _sgd(params, cfg: Any, total: int) -> tuple[torch.optim.Optimizer, Any]:
    o = cfg.optimizer
    opt = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                          weight_decay=o.weight_decay)  # fmt: skip
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    return opt, sched


def bare_kd(teacher, data: dfkd.Data, s_name: str, cfg: Any, steps: int, batch: int) -> float:
    """Seconds of ``steps`` plain KD steps: a random real batch, teacher and student forward,
    the preset's ``kd_kl`` and ``ce`` terms, backward, SGD with its cosine schedule."""
    student = _student(s_name, data, 0).train()
    opt, sched = _sgd(student.parameters(), cfg, steps)
    kd, ce = cfg.distill_terms["kd_kl"], cfg.distill_terms.get("ce", {"weight": 0.0})
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(len(data.x_train), (batch,), generator=gen)
        x, y = data.x_train[idx], data.y_train[idx]
        with torch.no_grad():
            t_logits = teacher(x)
        s_logits = student(x)
        loss = kd.get("weight", 1.0) * kl_div(s_logits, t_logits, kd.get("T", 1.0))
        loss = loss + ce["weight"] * torch.nn.functional.cross_entropy(s_logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return time.perf_counter() - t0


def _bn_inputs(teacher: torch.nn.Module) -> tuple[list, list, list]:
    """Forward hooks collecting each BatchNorm's input statistics while ``stats`` holds
    ``None`` as its first item (synthesis steps only), and the hook handles."""
    stats: list = []

    def hook(_m: torch.nn.Module, i: tuple, _o: torch.Tensor) -> None:
        if stats and stats[0] is None:
            stats.append(channel_stats(i[0]))

    bns = [m for m in teacher.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    hooks = [m.register_forward_hook(hook) for m in bns]
    return stats, [(m.running_mean, m.running_var) for m in bns], hooks


def bare_dfq(teacher, data: dfkd.Data, s_name: str, cfg: Any, rounds: int, g: int, k: int,
             batch: int) -> float:  # fmt: skip
    """Seconds of ``rounds`` DFQ rounds: ``g`` generator steps (BN statistics + one-hot +
    adversarial KL + 20 × information entropy, Adam) and ``k`` student steps on fresh
    generator samples (``kd_kl``, SGD with the cosine schedule)."""
    student = _student(s_name, data, 0)
    a = cfg.source.args
    torch.manual_seed(1)
    c, h, _ = data.input_shape
    net = create_generator(a["model"], nz=a["nz"], out_channels=c, image_size=h)
    net = net.to(memory_format=torch.channels_last)
    g_opt = torch.optim.Adam(
        net.parameters(), lr=a["lr"], betas=tuple(a.get("betas", (0.5, 0.999)))
    )
    opt, sched = _sgd(student.parameters(), cfg, rounds * k)
    w = {n: t.get("weight", 1.0) for n, t in cfg.synth_terms.items()}
    stats, refs, hooks = _bn_inputs(teacher)
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(rounds):
        student.eval().requires_grad_(False)  # the generator's step: no student gradients
        for _ in range(g):
            stats[:] = [None]  # collect
            x = net(torch.randn(batch, a["nz"], generator=gen)).contiguous()
            t_logits = teacher(x)
            loss = (w["stat_match"] * bn_stat_loss(stats[1:], refs)
                    + w["one_hot"] * one_hot_loss(t_logits)
                    + w["adversarial"] * adversarial_loss(student(x), t_logits, "kl", 1.0)
                    + w["info_entropy"] * information_entropy_loss(t_logits))  # fmt: skip
            g_opt.zero_grad(set_to_none=True)
            loss.backward()
            g_opt.step()
        student.train().requires_grad_(True)
        for _ in range(k):
            with torch.no_grad():
                x = net(torch.randn(batch, a["nz"], generator=gen)).contiguous()
                stats.clear()  # no statistics in a student step
                t_logits = teacher(x)
            loss = kl_div(student(x), t_logits, cfg.distill_terms["kd_kl"].get("T", 1.0))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    for hk in hooks:
        hk.remove()
    return time.perf_counter() - t0


def overhead_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Engine step time over bare-loop time for ``kd`` and ``dfq`` (LeNet-5, 28×28)."""
    dataset, t_name, s_name, preset = SETUPS["lenet5 28×28"]
    data = dfkd.load_dataset(dataset)
    teacher = teacher_for(t_name, data)
    for p in teacher.parameters():
        p.requires_grad_(False)
    batch = 16 if args.small else BATCH
    rows = []
    for method in ("kd", "dfq"):
        cfg = dfkd.resolve_config(method, preset)
        g, k = cfg.g_steps, cfg.kd_steps
        rounds = 2 if args.small else max(1, args.steps // (g + k))
        over = [f"rounds={rounds}", f"batch_size={batch}", f"eval_every={rounds}",
                f"checkpoint_every={rounds}", "warmup_rounds=0"]  # fmt: skip
        engine, bare = [], []
        for _ in range(args.repeats):
            m = dfkd.distill(
                teacher, s_name, method, data, config=cfg.to_dict(), overrides=over, progress=False
            )  # the very config of the bare loop
            engine.append(m["synthesis_s"] + m["distill_s"])
            bare.append(bare_kd(teacher, data, s_name, cfg, rounds * k, batch) if method == "kd"
                        else bare_dfq(teacher, data, s_name, cfg, rounds, g, k, batch))  # fmt: skip
        rows.append({"method": method, "rounds": rounds, "g_steps": g, "kd_steps": k,
                     "batch": batch, "engine_s": min(engine), "bare_s": min(bare),
                     "ratio": min(engine) / min(bare), "engine_all": engine,
                     "bare_all": bare})  # fmt: skip
    return rows


def markdown(doc: dict[str, Any]) -> list[str]:
    rates = doc["meta"].get("rates_command")
    lines = header("Throughput and engine overhead", doc["meta"],
                   "Images per second at batch 256 (the engine's own step timers)"
                   + (f", from `{rates}`" if rates else "") + "; overhead: best of the "
                   "repeats, engine step time over a bare hand-written loop.")  # fmt: skip
    setups = list(SETUPS)
    lines += ["| method | " + " | ".join(f"{s}: synth img/s | {s}: student img/s" for s in setups)
              + " |", "|---|" + "---|---|" * len(setups)]  # fmt: skip
    for method in dict.fromkeys(r["method"] for r in doc["rates"]):
        cells = []
        for s in setups:
            r = next(r for r in doc["rates"] if r["method"] == method and r["setup"] == s)
            synth = "–" if r["synth_img_per_s"] is None else f"{r['synth_img_per_s']:.0f}"
            cells += [synth, f"{r['student_img_per_s']:.0f}"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", "| method | steps (synthesis + student) | engine s | bare loop s | "
              "engine / bare |",
              "|---|---|---|---|---|"]  # fmt: skip
    for r in doc["overhead"]:
        steps = r["rounds"] * (r["g_steps"] + r["kd_steps"])
        lines.append(f"| {r['method']} | {steps} | {r['engine_s']:.2f} | {r['bare_s']:.2f} | "
                     f"{r['ratio']:.3f} |")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = "python benchmarks/throughput.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    res = Path(args.results)
    old = json.loads((res / "throughput.json").read_text()) if args.only == "overhead" else {}
    doc: dict[str, Any] = {"meta": run_meta(command.strip())}
    doc["overhead"] = overhead_rows(args)
    print(json.dumps(doc["overhead"]), flush=True)
    doc["rates"] = old.get("rates", [])
    if args.only != "overhead":
        for setup in SETUPS:
            for method in methods():
                doc["rates"].append(rate_row(method, setup, args))
                print(json.dumps(doc["rates"][-1]), flush=True)
    else:
        doc["meta"]["rates_command"] = old["meta"]["command"]
    res.mkdir(parents=True, exist_ok=True)
    atomic_write_text(res / "throughput.json", json.dumps(doc, indent=1))
    atomic_write_text(res / "throughput.md", "\n".join(markdown(doc)) + "\n")
    print("\n".join(markdown(doc)))


if __name__ == "__main__":
    main()

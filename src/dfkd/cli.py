"""``dfkd`` command line: a thin layer over :mod:`dfkd.api`."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .errors import DfkdError


def _fmt_pct(v: Any) -> str:
    return f"{100 * v:.2f} %" if isinstance(v, float) else str(v)


def print_table(rows: list[tuple[str, str]], title: str | None = None) -> None:
    """Two-column aligned table on stdout."""
    width = max(len(k) for k, _ in rows)
    if title:
        print(title)
    print("-" * (width + 24))
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print("-" * (width + 24))


def registries() -> dict[str, Any]:
    """Every registry ``dfkd list`` shows, by kind (all of dfkd imported, so all registered)."""
    import dfkd  # noqa: F401

    from .registry import registries as made

    return made()


def cmd_list(a: argparse.Namespace) -> int:
    kinds = [a.kind] if a.kind else list(registries())
    for kind in kinds:
        reg = registries()[kind]
        print(f"{kind}:")
        if not len(reg):
            print("  (none registered)")
        for e in reg.entries():
            if a.pattern and not __import__("fnmatch").fnmatch(e.name, a.pattern):
                continue
            tag = (
                f" [{e.tags['kind']}]"
                if kind == "models" and e.tags.get("kind") != "classifier"
                else ""
            )
            print(f"  {e.name:<20}{tag} {e.doc}")
    return 0


def cmd_describe(a: argparse.Namespace) -> int:
    from .api import choose_method, resolve_config
    from .methods import METHODS

    if a.method == "auto":
        if not a.teacher:
            raise DfkdError("describe auto needs the teacher it would choose for: --teacher CARD")
        choice = choose_method(a.teacher, a.dataset or "digits", a.stats, data_root=a.data_root)
        print(f"# auto: {choice.command()}  ({choice.why})")
        a.method = choice.method
    m = METHODS.get(a.method)
    root = [f"data.root={a.data_root}"] if a.data_root else []
    cfg = resolve_config(a.method, a.dataset, a.config, [*a.set, *root], stats=a.stats)
    print(f"# {m.name}: {m.summary}")
    if m.reference:
        print(f"# reference: {m.reference}")
    presets = ", ".join(sorted(m.presets)) or "none"
    print(f"# dataset presets: {presets}; dataset '{cfg.data.name}' takes {cfg.preset}")
    if a.teacher:
        from .api import statistics_plan

        plan = statistics_plan(cfg, a.teacher)
        print(f"# statistics on this teacher: {plan or 'none (the method matches no statistics)'}")
    if a.options:
        print("\n".join(_option_lines(cfg)))
    print(cfg.to_yaml(), end="")
    return 0


def _option_lines(cfg: Any) -> list[str]:
    """Every option of the run's source, terms and plug-ins: its value here and what it is."""
    from .losses import TERMS
    from .plugins import PLUGINS
    from .registry import options_of
    from .sources import SOURCES

    parts = [("source", cfg.source.name, SOURCES.get(cfg.source.name), cfg.source.args)]
    parts += [(f"{phase} term", name, TERMS.get(name), args)
              for phase, terms in (("synth", cfg.synth_terms), ("distill", cfg.distill_terms))
              for name, args in terms.items()]  # fmt: skip
    parts += [("plug-in", p.name, PLUGINS.get(p.name), p.args) for p in cfg.plugins]
    lines = ["# options (value in this config; what it is):"]
    for kind, name, obj, args in parts:
        lines.append(f"#   {kind} {name}")
        for opt, default, doc in options_of(obj):
            lines.append(f"#     {opt} = {args.get(opt, default)!r}  {doc}")
    return lines


def cmd_teacher_train(a: argparse.Namespace) -> int:
    from .teachers.train import train_teacher

    card = train_teacher(
        a.dataset,
        a.model,
        a.epochs,
        a.out,
        seed=a.seed,
        batch_size=a.batch_size,
        lr=a.lr,
        shift=a.shift,
        flip=a.flip,
        data_root=a.data_root,
        overwrite=a.overwrite,
        progress=not a.quiet,
        command=a.cmdline,
    )
    print_table(
        [
            ("dataset", a.dataset),
            ("model", a.model),
            ("test accuracy", _fmt_pct(card["test_accuracy"])),
            ("train time", f"{card['train']['wall_s']:.1f} s"),
            ("card", card["path"]),
        ]
    )
    return 0


_DOMAIN_ROWS = ("ood_accuracy", "ood_teacher_agreement", "triggered_accuracy",
                "attack_success_rate")  # fmt: skip


def _domain_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    from .evaluation.ood import METRICS

    rows = []
    for key, label in ((k, METRICS[k]) for k in _DOMAIN_ROWS):
        if key in m:
            t = m.get(f"teacher_{key}")
            rows.append((label, _fmt_pct(m[key]) + (f" (teacher {_fmt_pct(t)})" if t else "")))
    return rows


def cmd_teacher_import(a: argparse.Namespace) -> int:
    from .config import parse_overrides
    from .teachers.imported import import_teacher

    card = import_teacher(a.model, a.weights, a.dataset, a.out, normalization=a.normalization,
                          model_args=parse_overrides(a.model_arg), data_root=a.data_root,
                          overwrite=a.overwrite, command=a.cmdline)  # fmt: skip
    acc = card["test_accuracy"]
    print_table(
        [
            ("model", a.model),
            ("dataset", a.dataset),
            ("normalization", a.normalization),
            ("test accuracy", _fmt_pct(acc) if acc is not None else "no labelled test split"),
            ("card", card["path"]),
        ]
    )
    return 0


def cmd_teacher_train_nt(a: argparse.Namespace) -> int:
    from .config import parse_overrides
    from .teachers.nt import train_nt_teacher

    card = train_nt_teacher(
        a.kind,
        a.dataset,
        ood=a.ood,
        trigger=a.trigger,
        model=a.model,
        epochs=a.epochs,
        out=a.out,
        init=a.init,
        options=parse_overrides(a.option),
        seed=a.seed,
        batch_size=a.batch_size,
        lr=a.lr,
        lr_decay=a.lr_decay,
        data_root=a.data_root,
        overwrite=a.overwrite,
        progress=not a.quiet,
        command=a.cmdline,
    )
    nt = card["non_transferable"]
    rows = [
        ("kind", a.kind),
        ("dataset", a.dataset),
        ("OOD", nt.get("ood_dataset") or nt.get("trigger", "")),
        ("ID accuracy", _fmt_pct(card["test_accuracy"])),
    ]
    rows += _domain_rows(nt)
    rows += [("train time", f"{card['train']['wall_s']:.1f} s"), ("card", card["path"])]
    print_table(rows)
    return 0


def _metrics_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("method", m["method"]),
        ("dataset", m["dataset"]),
        ("teacher accuracy", _fmt_pct(m["teacher_accuracy"])),
        ("student accuracy", _fmt_pct(m["student_accuracy"])),
        ("agreement", _fmt_pct(m["agreement"])),
        *_domain_rows(m),
        *_coverage_rows(m),
        *([("statistics", m["statistics"]["why"])] if "statistics" in m else []),
        ("steps", str(m["steps"])),
        ("time", f"{m['wall_s']:.1f} s"),
        *([("time budget", _budget_text(m["budget"]))] if "budget" in m else []),
    ]


def _coverage_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    """How evenly the teacher's classes were represented in what the student trained on."""
    if "class_balance" not in m:
        return []
    k, missing = len(m["synthetic_class_histogram"]), m["uncovered_classes"]
    text = f"{k - len(missing)}/{k} classes, balance {m['class_balance']:.2f}"
    if missing:
        text += f" (too few samples of class {', '.join(map(str, missing))})"
    return [("class coverage", text)]


def _budget_text(b: dict[str, Any]) -> str:
    return (f"{b['budget_s']:.0f} s: {b['rounds']} rounds of {b['round_s']:.2f} s "
            f"(sized in {b['calibration_s']:.1f} s)")  # fmt: skip


def cmd_distill(a: argparse.Namespace) -> int:
    from .api import distill

    m = distill(
        a.teacher,
        a.student,
        a.method,
        a.dataset,
        out=a.out,
        config=a.config,
        overrides=a.set,
        plugins=a.plugin,
        seed=a.seed,
        teacher_weights=a.teacher_weights,
        stats=a.stats,
        substitute=a.substitute,
        ood_dataset=a.ood_dataset,
        trigger=a.trigger,
        data_root=a.data_root,
        resume=a.resume,
        overwrite=a.overwrite,
        stop_after_rounds=a.stop_after,
        time_budget=a.time_budget,
        progress=False if a.quiet else None,
        command=a.cmdline,
    )
    if os.environ.get("RANK", "0") != "0":  # launched by torchrun: rank 0 reports
        return 0
    rows = _metrics_rows(m)
    if "method_choice" in m:
        rows.insert(0, ("method (auto)", m["method_choice"]))
    if not m["completed"]:
        rows.append(("status", f"stopped after round {m['rounds']}; continue with --resume"))
    rows.append(("outputs", m["out"]))
    print_table(rows)
    return 0


def cmd_stats_collect(a: argparse.Namespace) -> int:
    from .api import collect_teacher_stats

    st = collect_teacher_stats(
        a.teacher,
        a.dataset,
        a.layers,
        a.out,
        teacher_weights=a.teacher_weights,
        data_root=a.data_root,
        split=a.split,
        max_samples=a.max_samples,
        overwrite=a.overwrite,
    )
    rows = [("dataset", f"{a.dataset} ({a.split}, {st.meta['samples']} samples)")]
    rows += [
        (
            f"layer {n}",
            f"{st.mean[n].numel()} channels" + (", spectrum" if n in st.spectrum else ""),
        )
        for n in st.layers
    ]
    rows.append(("statistics file", str(a.out)))
    print_table(rows)
    return 0


def cmd_eval(a: argparse.Namespace) -> int:
    from .api import evaluate

    r = evaluate(
        a.model,
        a.dataset,
        weights=a.weights,
        teacher=a.teacher,
        ood_dataset=a.ood_dataset,
        trigger=a.trigger,
        data_root=a.data_root,
    )
    if a.json:
        print(json.dumps(r))
    else:
        rows = [
            ("dataset", r["dataset"]),
            ("samples", str(r["samples"])),
            ("accuracy", _fmt_pct(r["accuracy"])),
        ]
        if "agreement" in r:
            rows += [
                ("teacher accuracy", _fmt_pct(r["teacher_accuracy"])),
                ("agreement", _fmt_pct(r["agreement"])),
            ]
        rows += _domain_rows(r)
        print_table(rows)
    return 0


def cmd_audit(a: argparse.Namespace) -> int:
    from .audit import audit_teacher, format_report
    from .teachers.triggers import ScanConfig

    if a.trigger_png and Path(a.trigger_png).exists():
        raise DfkdError(f"{a.trigger_png} exists; give another --trigger-png path")
    scan = ScanConfig(steps=a.trigger_steps) if a.trigger_steps else None
    r = audit_teacher(a.teacher, a.dataset, probes=a.probes, steps=a.steps, seed=a.seed,
                      data_root=a.data_root, scan=scan, trigger_png=a.trigger_png)  # fmt: skip
    print(json.dumps(r) if a.json else format_report(r))
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .io.export import export_model

    r = export_model(a.model, a.format, a.out, a.include_normalization, a.overwrite)
    print(json.dumps(r) if a.json else
          f"wrote {r['out']} ({r['format']}, {r['bytes']:,} bytes); largest difference from "
          f"PyTorch on a check batch: {r['max_abs_diff']:.1e}")  # fmt: skip
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    from .io.compare import compare_runs

    r = compare_runs(a.runs, a.out, a.overwrite)
    print(r["table"])
    print(f"wrote {', '.join(r['written'])}")
    if not r["plotted"]:
        print("dfkd: no picture: matplotlib is not installed (pip install 'dfkd[plots]')",
              file=sys.stderr)  # fmt: skip
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from .api import distill
    from .methods import METHODS
    from .teachers.train import train_teacher

    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(a.out or f"runs/demo-{stamp}")
    t0 = time.perf_counter()
    print(f"[1/2] training a {a.teacher_model} teacher on sklearn digits ...", flush=True)
    card = train_teacher(
        "digits",
        a.teacher_model,
        a.teacher_epochs,
        out / "teacher",
        seed=a.seed,
        batch_size=64,
        overwrite=a.overwrite,
        progress=not a.quiet,
    )
    how = "data-free" if METHODS.get(a.method).data_free else "with the training data"
    print(f"[2/2] distilling into {a.student} with '{a.method}' ({how}) ...", flush=True)
    m = distill(
        out / "teacher",
        a.student,
        a.method,
        "digits",
        out=out / "student",
        seed=a.seed,
        overrides=[f"rounds={a.rounds}"] if a.rounds else None,
        overwrite=a.overwrite,
        progress=False if a.quiet else None,
        command=a.cmdline,
    )
    total = time.perf_counter() - t0
    print()
    print_table(
        [
            ("teacher", f"{a.teacher_model} ({card['train']['wall_s']:.1f} s to train)"),
            ("student", f"{a.student} ({m['student_parameters']} parameters)"),
            *_metrics_rows(m),
            ("total time", f"{total:.1f} s"),
            ("teacher card", card["path"]),
            ("student outputs", m["out"]),
        ],
        title="dfkd demo: sklearn digits (8×8), end to end",
    )
    return 0


def _add_domain_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ood-dataset",
        default=None,
        metavar="NAME[:fit=pad|stretch,root=DIR]",
        help="also evaluate on this dataset brought into the dataset's input space",
    )
    p.add_argument(
        "--trigger",
        default=None,
        metavar="NAME[:k=v,...]",
        help="also evaluate with this trigger stamped on the test images, e.g. square:target=0 "
        "(dfkd list triggers)",
    )


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other dfkd error (the
    sub-command parsers are of this class too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"dfkd: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from .version import __version__

    p = OneLineParser(prog="dfkd", description="Data-free knowledge distillation.")
    p.add_argument("--version", action="version", version=f"dfkd {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    _add_list(sub)
    _add_describe(sub)
    tp = _add_teacher_train(sub)
    _add_teacher_import(tp)
    _add_teacher_train_nt(tp)
    _add_distill(sub)
    _add_stats(sub)
    _add_eval(sub)
    _add_audit(sub)
    _add_export(sub)
    _add_compare(sub)
    _add_demo(sub)
    return p


def _add_list(sub: Any) -> None:
    """``dfkd list``."""
    sp = sub.add_parser("list", help="list registered methods, models, datasets, plug-ins, ...")
    sp.add_argument("kind", nargs="?", choices=list(registries()))
    sp.add_argument("pattern", nargs="?", default=None, help="shell-style filter, e.g. 'lenet*'")
    sp.set_defaults(fn=cmd_list)


def _add_describe(sub: Any) -> None:
    """``dfkd describe``."""
    dsc = sub.add_parser("describe", help="print the resolved config a method would run with")
    dsc.add_argument("method", help="a registered method, or auto (needs --teacher)")
    dsc.add_argument("--dataset", default=None)
    dsc.add_argument("--config", default=None)
    dsc.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    dsc.add_argument(
        "--teacher",
        default=None,
        help="teacher card: also say what the statistics term matches on it",
    )
    dsc.add_argument("--stats", default=None, help="the statistics file the run would get")
    dsc.add_argument("--data-root", default=None, help="where the dataset's files are")
    dsc.add_argument("--options", action="store_true",
                     help="also list every option of the source, terms and plug-ins")  # fmt: skip
    dsc.set_defaults(fn=cmd_describe)


def _add_teacher_train(sub: Any) -> Any:
    """``dfkd teacher`` and ``dfkd teacher train``."""
    tp = sub.add_parser("teacher", help="teacher commands").add_subparsers(
        dest="teacher_cmd", required=True
    )
    tt = tp.add_parser("train", help="train a teacher and save its card")
    tt.add_argument("--dataset", required=True)
    tt.add_argument("--model", required=True)
    tt.add_argument("--epochs", type=int, default=20)
    tt.add_argument("--out", required=True)
    tt.add_argument("--seed", type=int, default=0)
    tt.add_argument("--batch-size", type=int, default=128)
    tt.add_argument("--lr", type=float, default=0.05)
    tt.add_argument("--shift", type=int, default=0, help="random-shift augmentation in pixels")
    tt.add_argument("--flip", action="store_true", help="random horizontal flips")
    tt.add_argument("--data-root", default=None)
    tt.add_argument("--overwrite", action="store_true")
    tt.add_argument("--quiet", action="store_true")
    tt.set_defaults(fn=cmd_teacher_train)
    return tp


def _add_teacher_import(tp: Any) -> None:
    """``dfkd teacher import``."""
    ti = tp.add_parser("import", help="make a teacher card for a network trained elsewhere")
    ti.add_argument("--model", required=True, help="package.module:factory (or a registry name)")
    ti.add_argument("--weights", required=True, help="its weights (.safetensors)")
    ti.add_argument("--dataset", required=True, help="the dataset it classifies")
    ti.add_argument(
        "--normalization",
        default="dataset",
        metavar="dataset|none|MEAN,STD",
        help="the input normalisation it was trained with: the dataset's statistics (default), "
        "none (pixels in [0, 1]), or MEAN,STD (per channel: C means then C stds)",
    )
    ti.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                    help="a keyword argument of the factory")  # fmt: skip
    ti.add_argument("--out", required=True)
    ti.add_argument("--data-root", default=None)
    ti.add_argument("--overwrite", action="store_true")
    ti.set_defaults(fn=cmd_teacher_import)


def _add_teacher_train_nt(tp: Any) -> None:
    """``dfkd teacher train-nt``."""
    tn = tp.add_parser("train-nt", help="train a non-transferable teacher (NTL, CUTI, ...)")
    tn.add_argument("--kind", required=True, help="ntl | cuti | watermark | backdoor")
    tn.add_argument("--dataset", required=True, help="the in-distribution dataset")
    tn.add_argument("--ood", default=None, help="OOD dataset NAME[:fit=pad|stretch] (ntl, cuti)")
    tn.add_argument(
        "--trigger",
        default=None,
        help="trigger NAME[:k=v,...] (watermark: default grid; backdoor: square:target=0)",
    )
    tn.add_argument("--model", default="lenet5")
    tn.add_argument("--epochs", type=int, default=20)
    tn.add_argument("--out", required=True)
    tn.add_argument("--init", default=None, help="start from this teacher card's weights")
    tn.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the kind (alpha, beta, reduction, gamma)",
    )
    tn.add_argument("--seed", type=int, default=0)
    tn.add_argument("--batch-size", type=int, default=128)
    tn.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    tn.add_argument("--lr-decay", type=float, default=0.999, help="lr factor per step")
    tn.add_argument("--data-root", default=None)
    tn.add_argument("--overwrite", action="store_true")
    tn.add_argument("--quiet", action="store_true")
    tn.set_defaults(fn=cmd_teacher_train_nt)


def _add_distill(sub: Any) -> None:
    """``dfkd distill``."""
    dp = sub.add_parser("distill", help="distil a teacher into a student")
    dp.add_argument(
        "method", nargs="?", default=None,
        help="registered method (dfkd list methods), or auto (the default): the one "
        "recommended for the teacher; with --resume, the saved run's",
    )  # fmt: skip
    dp.add_argument(
        "--teacher",
        default=None,
        help="teacher card (.json or folder) or module:factory; with --resume, the saved run's",
    )
    dp.add_argument(
        "--teacher-weights", default=None, help="safetensors weights for a module:factory teacher"
    )
    dp.add_argument(
        "--student", default=None, help="registry name or module:factory (default lenet5_half)"
    )
    dp.add_argument("--dataset", default=None, help="registered dataset (default digits)")
    dp.add_argument("--out", required=True, help="output folder for this run")
    dp.add_argument("--config", default=None, help="YAML file layered over the method's defaults")
    dp.add_argument(
        "--stats", default=None, help="teacher statistics file (from `dfkd stats collect`)"
    )
    dp.add_argument(
        "--substitute",
        default=None,
        metavar="NAME[:fit=pad|stretch,root=DIR]",
        help="unlabelled substitute dataset for --method substitute (default per dataset: "
        "dfkd describe substitute --dataset D)",
    )
    dp.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    dp.add_argument(
        "--plugin",
        action="append",
        default=None,
        metavar="NAME[:k=v,...]",
        help="add a plug-in (repeatable)",
    )
    _add_domain_flags(dp)
    dp.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    dp.add_argument("--data-root", default=None, help="folder holding the dataset files")
    dp.add_argument("--resume", action="store_true", help="continue the run in --out")
    dp.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    dp.add_argument(
        "--stop-after",
        type=int,
        default=None,
        metavar="ROUNDS",
        help="stop with a checkpoint after this many rounds",
    )
    dp.add_argument(
        "--time-budget",
        default=None,
        metavar="DURATION",
        help="size the run to this wall time on this machine (e.g. 90s, 10m, 1h): rounds are "
        "set from the measured cost of the first steps",
    )
    dp.add_argument("--quiet", action="store_true", help="no progress bar")
    dp.set_defaults(fn=cmd_distill)


def _add_stats(sub: Any) -> None:
    """``dfkd stats collect``."""
    stp = sub.add_parser("stats", help="teacher feature statistics").add_subparsers(
        dest="stats_cmd", required=True
    )
    sc = stp.add_parser("collect", help="collect per-layer statistics on real data (data owner)")
    sc.add_argument(
        "--teacher", required=True, help="teacher card (.json or folder) or module:factory"
    )
    sc.add_argument("--teacher-weights", default=None)
    sc.add_argument("--dataset", required=True)
    sc.add_argument(
        "--layers", nargs="+", default=None, help="module paths (default: every conv/linear)"
    )
    sc.add_argument("--out", required=True, help="statistics file to write (.safetensors)")
    sc.add_argument("--split", default="train", choices=["train", "test"])
    sc.add_argument("--max-samples", type=int, default=None)
    sc.add_argument("--data-root", default=None)
    sc.add_argument("--overwrite", action="store_true")
    sc.set_defaults(fn=cmd_stats_collect)


def _add_eval(sub: Any) -> None:
    """``dfkd eval``."""
    ep = sub.add_parser("eval", help="test accuracy of a model (and agreement with a teacher)")
    ep.add_argument("--model", required=True, help="model card (.json or folder) or module:factory")
    ep.add_argument("--weights", default=None)
    ep.add_argument("--dataset", required=True)
    ep.add_argument("--teacher", default=None)
    ep.add_argument("--data-root", default=None)
    _add_domain_flags(ep)
    ep.add_argument("--json", action="store_true")
    ep.set_defaults(fn=cmd_eval)


def _add_audit(sub: Any) -> None:
    """``dfkd audit``."""
    au = sub.add_parser("audit", help="look for signs of a non-transferable teacher (no data)")
    au.add_argument("--teacher", required=True, help="teacher card (.json or folder)")
    au.add_argument("--dataset", default=None, help="only for a teacher without a card")
    au.add_argument("--probes", type=int, default=256, help="probes per probe set")
    au.add_argument("--steps", type=int, default=100, help="inversion steps")
    au.add_argument(
        "--trigger-steps", type=int, default=300,
        help="trigger scan: optimisation steps per class (0 skips the scan)",
    )  # fmt: skip
    au.add_argument(
        "--trigger-png", default=None, metavar="PATH",
        help="save the scan's recovered masks and patterns (one row per class)",
    )  # fmt: skip
    au.add_argument("--seed", type=int, default=0)
    au.add_argument("--data-root", default=None)
    au.add_argument("--json", action="store_true")
    au.set_defaults(fn=cmd_audit)


def _add_export(sub: Any) -> None:
    """``dfkd export``."""
    xp = sub.add_parser("export", help="write a model card's network as ONNX or TorchScript")
    xp.add_argument("--model", required=True, help="model card (.json or folder)")
    xp.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    xp.add_argument("--out", required=True, help="the file to write")
    xp.add_argument(
        "--include-normalization", action="store_true",
        help="fold the card's input normalisation into the graph (inputs: pixels in [0, 1]); "
        "without it the graph takes normalised inputs and the file's metadata records mean/std",
    )  # fmt: skip
    xp.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    xp.add_argument("--json", action="store_true")
    xp.set_defaults(fn=cmd_export)


def _add_compare(sub: Any) -> None:
    """``dfkd compare``."""
    cp = sub.add_parser("compare", help="runs side by side: a table and accuracy against time")
    cp.add_argument("runs", nargs="+", metavar="RUN_DIR", help="folders written by dfkd distill")
    cp.add_argument(
        "--out",
        default=None,
        help="folder for compare.md and compare.png (default: the runs' parent)",
    )
    cp.add_argument("--overwrite", action="store_true", help="replace an earlier comparison")
    cp.set_defaults(fn=cmd_compare)


def _add_demo(sub: Any) -> None:
    """``dfkd demo``."""
    mp = sub.add_parser("demo", help="end to end on sklearn digits: teacher, distillation, table")
    mp.add_argument("--out", default=None, help="default: runs/demo-<timestamp>")
    mp.add_argument("--method", default="deepinversion", help="default: deepinversion (data-free)")
    mp.add_argument(
        "--rounds",
        type=int,
        default=40,
        help="rounds of the method (default 40, four times the digits preset; 0 = the preset)",
    )
    mp.add_argument("--teacher-model", default="lenet5")
    mp.add_argument("--teacher-epochs", type=int, default=30)
    mp.add_argument("--student", default="lenet5_half")
    mp.add_argument("--seed", type=int, default=0)
    mp.add_argument("--overwrite", action="store_true")
    mp.add_argument("--quiet", action="store_true")
    mp.set_defaults(fn=cmd_demo)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dfkd`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.cmdline = "dfkd " + shlex.join(argv)
    try:
        return int(args.fn(args) or 0)
    except DfkdError as e:
        print(f"dfkd: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dfkd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

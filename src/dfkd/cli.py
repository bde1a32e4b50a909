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

from .api import collect_teacher_stats, distill, evaluate
from .audit import audit_teacher, format_report
from .cliflags import add_flags, call
from .config import parse_overrides
from .errors import DfkdError
from .io.compare import compare_runs
from .io.export import export_model
from .methods import METHODS
from .teachers.imported import import_teacher
from .teachers.nt import train_nt_teacher
from .teachers.train import train_teacher
from .teachers.triggers import ScanConfig


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
    card = call(train_teacher, a, progress=not a.quiet, command=a.cmdline)
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
    card = call(import_teacher, a, model_args=parse_overrides(a.model_arg), command=a.cmdline)
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
    card = call(train_nt_teacher, a, options=parse_overrides(a.option), progress=not a.quiet,
                command=a.cmdline)  # fmt: skip
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
    m = call(distill, a, overrides=a.set, plugins=a.plugin, stop_after_rounds=a.stop_after,
             progress=False if a.quiet else None, command=a.cmdline)  # fmt: skip
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
    st = call(collect_teacher_stats, a)
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
    r = call(evaluate, a)
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
    if a.trigger_png and Path(a.trigger_png).exists():
        raise DfkdError(f"{a.trigger_png} exists; give another --trigger-png path")
    scan = ScanConfig(steps=a.trigger_steps) if a.trigger_steps else None
    r = call(audit_teacher, a, scan=scan)
    print(json.dumps(r) if a.json else format_report(r))
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    r = call(export_model, a, model_card=a.model, fmt=a.format)
    print(json.dumps(r) if a.json else
          f"wrote {r['out']} ({r['format']}, {r['bytes']:,} bytes); largest difference from "
          f"PyTorch on a check batch: {r['max_abs_diff']:.1e}")  # fmt: skip
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    r = call(compare_runs, a)
    print(r["table"])
    print(f"wrote {', '.join(r['written'])}")
    if not r["plotted"]:
        print("dfkd: no picture: matplotlib is not installed (pip install 'dfkd[plots]')",
              file=sys.stderr)  # fmt: skip
    return 0


#: the demo's networks (your own: `dfkd teacher train` or `import`, then `dfkd distill`)
DEMO_TEACHER, DEMO_STUDENT = "lenet5", "lenet5_half"


def cmd_demo(a: argparse.Namespace) -> int:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(a.out or f"runs/demo-{stamp}")
    t0 = time.perf_counter()
    print(f"[1/2] training a {DEMO_TEACHER} teacher on sklearn digits ...", flush=True)
    card = train_teacher(
        "digits",
        DEMO_TEACHER,
        a.teacher_epochs,
        out / "teacher",
        seed=0,
        batch_size=64,
        overwrite=a.overwrite,
        progress=not a.quiet,
    )
    how = "data-free" if METHODS.get(a.method).data_free else "with the training data"
    print(f"[2/2] distilling into {DEMO_STUDENT} with '{a.method}' ({how}) ...", flush=True)
    m = distill(
        out / "teacher",
        DEMO_STUDENT,
        a.method,
        "digits",
        out=out / "student",
        seed=0,
        overrides=[f"rounds={a.rounds}"] if a.rounds else None,
        overwrite=a.overwrite,
        progress=False if a.quiet else None,
        command=a.cmdline,
    )
    total = time.perf_counter() - t0
    print()
    print_table(
        [
            ("teacher", f"{DEMO_TEACHER} ({card['train']['wall_s']:.1f} s to train)"),
            ("student", f"{DEMO_STUDENT} ({m['student_parameters']} parameters)"),
            *_metrics_rows(m),
            ("total time", f"{total:.1f} s"),
            ("teacher card", card["path"]),
            ("student outputs", m["out"]),
        ],
        title="dfkd demo: sklearn digits (8×8), end to end",
    )
    return 0


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
    add_flags(tt, train_teacher, "dataset!", "model!", "epochs", "out!", "seed", "batch_size",
              "lr", "shift", "flip", "data_root", "overwrite", "quiet")  # fmt: skip
    tt.set_defaults(fn=cmd_teacher_train)
    return tp


def _add_teacher_import(tp: Any) -> None:
    """``dfkd teacher import``."""
    ti = tp.add_parser("import", help="make a teacher card for a network trained elsewhere")
    add_flags(ti, import_teacher, "model!", "weights!", "dataset!", "normalization", "model_arg",
              "out!", "data_root", "overwrite")  # fmt: skip
    ti.set_defaults(fn=cmd_teacher_import)


def _add_teacher_train_nt(tp: Any) -> None:
    """``dfkd teacher train-nt``."""
    tn = tp.add_parser("train-nt", help="train a non-transferable teacher (NTL, CUTI, ...)")
    add_flags(tn, train_nt_teacher, "kind!", "dataset!", "ood", "trigger", "model", "epochs",
              "out!", "init", "option", "seed", "batch_size", "lr", "lr_decay", "data_root",
              "overwrite", "quiet")  # fmt: skip
    tn.set_defaults(fn=cmd_teacher_train_nt)


def _add_distill(sub: Any) -> None:
    """``dfkd distill``."""
    dp = sub.add_parser("distill", help="distil a teacher into a student")
    dp.add_argument(
        "method", nargs="?", default=None,
        help="registered method (dfkd list methods), or auto (the default): the one "
        "recommended for the teacher; with --resume, the saved run's",
    )  # fmt: skip
    add_flags(dp, distill, "teacher", "teacher_weights", "student", "dataset", "out!", "config",
              "stats", "substitute", "set", "plugin", "ood_dataset", "trigger", "seed",
              "data_root", "resume", "overwrite", "stop_after", "time_budget", "quiet")  # fmt: skip
    dp.set_defaults(fn=cmd_distill)


def _add_stats(sub: Any) -> None:
    """``dfkd stats collect``."""
    stp = sub.add_parser("stats", help="teacher feature statistics").add_subparsers(
        dest="stats_cmd", required=True
    )
    sc = stp.add_parser("collect", help="collect per-layer statistics on real data (data owner)")
    add_flags(sc, collect_teacher_stats, "teacher!", "teacher_weights", "dataset!", "layers",
              "out!", "split", "max_samples", "data_root", "overwrite")  # fmt: skip
    sc.set_defaults(fn=cmd_stats_collect)


def _add_eval(sub: Any) -> None:
    """``dfkd eval``."""
    ep = sub.add_parser("eval", help="test accuracy of a model (and agreement with a teacher)")
    add_flags(ep, evaluate, "model!", "weights", "dataset!", "teacher", "data_root",
              "ood_dataset", "trigger", "json")  # fmt: skip
    ep.set_defaults(fn=cmd_eval)


def _add_audit(sub: Any) -> None:
    """``dfkd audit``."""
    au = sub.add_parser("audit", help="look for signs of a non-transferable teacher (no data)")
    add_flags(au, audit_teacher, "teacher!", "dataset", "probes", "steps", "trigger_steps",
              "trigger_png", "seed", "data_root", "json")  # fmt: skip
    au.set_defaults(fn=cmd_audit)


def _add_export(sub: Any) -> None:
    """``dfkd export``."""
    xp = sub.add_parser("export", help="write a model card's network as ONNX or TorchScript")
    xp.add_argument("--model", required=True, help="model card (.json or folder)")
    xp.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    add_flags(xp, export_model, "out!", "include_normalization", "overwrite", "json")
    xp.set_defaults(fn=cmd_export)


def _add_compare(sub: Any) -> None:
    """``dfkd compare``."""
    cp = sub.add_parser("compare", help="runs side by side: a table and accuracy against time")
    cp.add_argument("runs", nargs="+", metavar="RUN_DIR", help="folders written by dfkd distill")
    add_flags(cp, compare_runs, "out", "overwrite")
    cp.set_defaults(fn=cmd_compare)


def _add_demo(sub: Any) -> None:
    """``dfkd demo``: its own flags (a demo, not an API call)."""
    mp = sub.add_parser("demo", help="end to end on sklearn digits: teacher, distillation, table")
    mp.add_argument("--out", default=None, help="default: runs/demo-<timestamp>")
    mp.add_argument("--method", default="deepinversion", help="default: deepinversion (data-free)")
    mp.add_argument("--rounds", type=int, default=40,
                    help="rounds of the method (default 40, four times the digits preset; "
                    "0 = the preset)")  # fmt: skip
    mp.add_argument("--teacher-epochs", type=int, default=30)
    add_flags(mp, distill, "overwrite", "quiet")
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

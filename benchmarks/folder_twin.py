"""A user's folder against the named dataset it copies: Fashion-MNIST written as PNG class
folders (the ``folder`` dataset's layout, train and test splits), and the zoo's Fashion-MNIST
``lenet5`` teacher distilled from each with the same method and budget. The folder carries no
name, so its preset comes from its measured profile (shape, classes, mirror symmetry); both
runs should take the same configuration and land within a point of each other.

    python benchmarks/folder_twin.py [--method fast] [--time-budget 5m]

Writes ``results/folder_twin.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from common import header, pct, results_doc, run_meta
from zoo import zoo_teacher

import dfkd
from dfkd.io.files import atomic_write_text

DATASET = "fashion-mnist"


def write_folder(data: dfkd.Data, root: Path) -> Path:
    """``data``'s splits as 8-bit grey PNGs under ``root/{train,test}/<class>/`` (once)."""
    from PIL import Image

    done = root / ".complete"
    if done.exists():
        return root
    for split, xs, ys in (("train", data.x_train, data.y_train),
                          ("test", data.x_test, data.y_test)):  # fmt: skip
        pixels = (data.denormalize(xs) * 255).round().to(torch.uint8)
        for i, (img, y) in enumerate(zip(pixels, ys.tolist(), strict=True)):
            folder = root / split / f"{y:02d}-{data.class_names[y].replace('/', '-')}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[0].numpy(), mode="L").save(folder / f"{i:05d}.png")
    done.write_text("")
    return root


def run(teacher: Path, dataset: str, root: Path | None, args: argparse.Namespace) -> dict:
    out = Path(args.out) / dataset
    overrides = [f"data.root={root}"] if root else []
    cfg = dfkd.resolve_config(args.method, dataset, overrides=overrides)
    t0 = time.perf_counter()
    m = dfkd.distill(teacher, method=args.method, dataset=dataset, out=out, overwrite=True,
                     time_budget=args.time_budget, progress=False,
                     data_root=None if root is None else str(root))  # fmt: skip
    return {"dataset": dataset, "preset": cfg.preset, "method": args.method,
            "time_budget": args.time_budget, "rounds": m["rounds"],
            "teacher_accuracy": m["teacher_accuracy"], "student_accuracy": m["student_accuracy"],
            "percent_of_teacher": round(100 * m["student_accuracy"] / m["teacher_accuracy"], 2),
            "call_s": round(time.perf_counter() - t0, 1),
            "same_config_as_named": None}  # fmt: skip


def same_config(method: str, root: Path) -> bool:
    """Whether the folder resolves the named dataset's configuration (data and preset aside)."""
    drop = lambda c: {k: v for k, v in c.to_dict().items() if k not in ("data", "preset")}  # noqa: E731
    folder = dfkd.resolve_config(method, "folder", overrides=[f"data.root={root}"])
    return drop(folder) == drop(dfkd.resolve_config(method, DATASET))


def markdown(doc: dict) -> str:
    lines = header(
        "A folder dataset against its named twin",
        doc["meta"],
        "Fashion-MNIST written as PNG class folders (70,000 images, the same splits) and the "
        "named `fashion-mnist` dataset; the zoo's Fashion-MNIST `lenet5` teacher distilled into "
        "`lenet5_half` from each with the same method and time budget, seed 0. Final test-split "
        "accuracy (no checkpoint selection).",
    )
    lines += ["| dataset | preset taken | method | budget | rounds | student acc "
              "| % of teacher | same config | call s |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in doc["rows"]:
        lines.append(f"| `{r['dataset']}` | {r['preset']} | {r['method']} | {r['time_budget']} "
                     f"| {r['rounds']} | {pct(r['student_accuracy'])} "
                     f"| {r['percent_of_teacher']:.2f} | {r['same_config_as_named']} "
                     f"| {r['call_s']:.0f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="fast")
    ap.add_argument("--time-budget", default="5m")
    ap.add_argument("--zoo", default="runs/zoo")
    ap.add_argument("--folder", default="runs/folder-twin/images")
    ap.add_argument("--out", default="runs/folder-twin/runs")
    ap.add_argument("--results", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    teacher = zoo_teacher("lenet5", DATASET, Path(args.zoo))
    root = write_folder(dfkd.load_dataset(DATASET), Path(args.folder))
    rows = [run(teacher, DATASET, None, args), run(teacher, "folder", root, args)]
    same = same_config(args.method, root)
    rows[1]["same_config_as_named"] = same
    rows[0]["same_config_as_named"] = True
    res, path, doc = results_doc(args.results, "folder_twin")
    doc = {"meta": run_meta(" ".join(["python benchmarks/folder_twin.py", *sys.argv[1:]])),
           "rows": rows}  # fmt: skip
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    atomic_write_text(res / "folder_twin.md", markdown(doc))


if __name__ == "__main__":
    main()

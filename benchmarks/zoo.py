"""The teacher zoo: teachers trained in plain PyTorch — not with ``dfkd teacher train`` — as a
user brings them, imported with ``dfkd.import_teacher`` in the normalisation each was trained on.

Per dataset: a BN-free CNN trained long (large logits), a VGG-style network with BatchNorm, a
small ResNet-style network with BatchNorm (trained on ``(x − 0.5)/0.5``), an MLP, the VGG with
label smoothing, the BN-free CNN on raw [0, 1] pixels, and dfkd's own ``lenet5``. Weights and
cards are cached under ``--out`` and reused. Reports each teacher's accuracy and logit scale.

    python benchmarks/zoo.py [--datasets mnist10k fashion-mnist] [--out runs/zoo]

Writes ``benchmarks/results/zoo_teachers.{json,md}`` (a rerun of some datasets replaces only
their rows). The distillation benchmark over this zoo builds on :func:`zoo_teacher`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
import zoo_nets
from common import TEACHER_EPOCHS, header, pct, results_doc, run_meta
from safetensors.torch import save_file

import dfkd
from dfkd.evaluation.metrics import predict
from dfkd.io.cards import in_model_space
from dfkd.teachers.imported import parse_normalization


@dataclass(frozen=True)
class Recipe:
    """How one zoo teacher is trained: its factory, input normalisation and optimiser."""

    factory: str
    normalization: str  # dataset | none | MEAN,STD (what dfkd.import_teacher takes)
    epochs: int
    optimizer: str = "sgd"
    lr: float = 0.05
    label_smoothing: float = 0.0
    notes: str = field(default="", compare=False)


ZOO = {
    "cnn-nobn": Recipe("zoo_nets:cnn_nobn", "dataset", 30, "adam", 1e-3,
                       notes="BN-free, Adam, trained long (large logits)"),
    "vgg-bn": Recipe("zoo_nets:vgg_bn", "dataset", 15, notes="VGG-style with BatchNorm"),
    "resnet-bn": Recipe("zoo_nets:resnet_small", "0.5,0.5", 15,
                        notes="ResNet-style with BatchNorm, inputs (x − 0.5)/0.5"),
    "mlp": Recipe("zoo_nets:mlp", "dataset", 20, "adam", 1e-3, notes="BN-free MLP"),
    "vgg-bn-ls": Recipe("zoo_nets:vgg_bn", "dataset", 15, label_smoothing=0.1,
                        notes="VGG-style with BatchNorm, label smoothing 0.1"),
    "cnn-raw": Recipe("zoo_nets:cnn_nobn", "none", 30, "adam", 1e-3,
                      notes="BN-free, raw [0, 1] pixels"),
}  # fmt: skip


def epochs_for(recipe: Recipe, n_train: int) -> int:
    """The recipe's epochs (set for MNIST-10k's 10k images) on a training split of ``n_train``:
    a larger split gets fewer epochs, at least twice MNIST-10k's steps (Fashion-MNIST: 1/3)."""
    return max(1, round(recipe.epochs * min(1.0, 20000 / n_train)))


def train_plain(recipe: Recipe, data: dfkd.Data, seed: int = 0) -> tuple[torch.nn.Module, float]:
    """Train the recipe's network with a hand-written PyTorch loop; returns it and seconds."""
    torch.manual_seed(seed)
    epochs = epochs_for(recipe, len(data.x_train))
    net = zoo_nets.__dict__[recipe.factory.split(":")[1]](data.num_classes, data.channels)
    mean, std = parse_normalization(recipe.normalization, data)
    x = data.with_normalization(mean, std).x_train
    steps = epochs * math.ceil(len(x) / 128)
    if recipe.optimizer == "adam":
        opt = torch.optim.Adam(net.parameters(), recipe.lr)
    else:
        opt = torch.optim.SGD(net.parameters(), recipe.lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen, t0 = torch.Generator().manual_seed(seed), time.perf_counter()
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(128):
            loss = F.cross_entropy(net(x[idx]), data.y_train[idx],
                                   label_smoothing=recipe.label_smoothing)  # fmt: skip
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return net.eval(), time.perf_counter() - t0


def zoo_teacher(name: str, dataset: str, out: Path) -> Path:
    """The card folder of a zoo teacher, trained and imported on first use."""
    folder = out / dataset / name
    if (folder / "teacher.json").exists():
        return folder
    if name == "lenet5":  # dfkd's own, for reference
        dfkd.train_teacher(dataset, "lenet5", TEACHER_EPOCHS[dataset], folder, progress=False)
        return folder
    recipe = ZOO[name]
    data = dfkd.load_dataset(dataset)
    net, seconds = train_plain(recipe, data)
    weights = out / dataset / f"{name}.safetensors"
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, weights)
    dfkd.import_teacher(recipe.factory, weights, dataset, folder,
                        normalization=recipe.normalization)  # fmt: skip
    card = json.loads((folder / "teacher.json").read_text())
    card["train"] = {"plain_pytorch_s": round(seconds, 1),
                     "epochs": epochs_for(recipe, len(data.x_train))}  # fmt: skip
    (folder / "teacher.json").write_text(json.dumps(card, indent=2) + "\n")
    return folder


def logit_scale(folder: Path, dataset: str) -> dict[str, float]:
    """Mean top logit and mean per-sample logit standard deviation on the test split."""
    model, card = dfkd.load_model(folder)
    data = in_model_space(dfkd.load_dataset(dataset), card)
    logits = predict(model, data.x_test)
    return {"max_logit": float(logits.amax(1).mean()), "logit_std": float(logits.std(1).mean())}


def markdown(doc: dict) -> str:
    lines = header(
        "Teacher zoo",
        doc["meta"],
        "Teachers trained in plain PyTorch and imported "
        "with `dfkd.import_teacher` in their own input normalisation, plus dfkd's "
        "`lenet5`. Final test-split accuracy; logit scale on the test split.",
    )
    for ds, rows in doc["rows"].items():
        command = doc.get("commands", {}).get(ds, doc["meta"]["command"])
        lines += [f"## {ds}", "", f"Command: `{command}`.", "",
                  "| teacher | what | normalization | epochs | test acc | mean top logit "
                  "| mean logit std | train s |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, r in rows.items():
            lines.append(
                f"| {name} | {r['notes']} | {r['normalization']} | {r.get('epochs', '–')} "
                f"| {pct(r['accuracy'])} | {r['max_logit']:.1f} | {r['logit_std']:.1f} "
                f"| {r['train_s']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["mnist10k", "fashion-mnist"],
                    choices=list(TEACHER_EPOCHS))  # fmt: skip
    ap.add_argument("--out", default="runs/zoo")
    ap.add_argument("--results", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    res, path, doc = results_doc(args.results, "zoo_teachers")
    default = ap.get_default("datasets")
    given = "" if args.datasets == default else " --datasets " + " ".join(args.datasets)
    doc["meta"] = run_meta("python benchmarks/zoo.py" + given)
    doc.setdefault("commands", {})
    for ds in args.datasets:
        rows = {}
        for name in [*ZOO, "lenet5"]:
            folder = zoo_teacher(name, ds, Path(args.out))
            card = json.loads((folder / "teacher.json").read_text())
            recipe = ZOO.get(name)
            rows[name] = {
                "notes": recipe.notes if recipe else "dfkd's own (dfkd teacher train)",
                "normalization": recipe.normalization if recipe else "dataset",
                "accuracy": card["test_accuracy"],
                "train_s": card["train"].get("plain_pytorch_s", card["train"].get("wall_s")),
                "epochs": card["train"].get("epochs"),
                **logit_scale(folder, ds),
            }
            print(ds, name, f"{100 * card['test_accuracy']:.2f} %", flush=True)
        doc["rows"][ds] = rows
        doc["commands"][ds] = doc["meta"]["command"]
        path.write_text(json.dumps(doc, indent=2) + "\n")
    (res / "zoo_teachers.md").write_text(markdown(doc) + "\n")
    print((res / "zoo_teachers.md").read_text())


if __name__ == "__main__":
    main()

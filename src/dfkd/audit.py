"""Teacher audit: before distilling a teacher you did not train, look for signs that it was made
non-transferable (NTL / CUTI / watermark / backdoor), using synthetic probes only, and
recommend a method and plug-ins.

Signals (each measured on two probe sets — uniform pixel noise, and images inverted from the
teacher toward every class, with its BatchNorm statistics when it has them):

* ``robust_fraction``: share of probes whose prediction survives ATEsc's PGD probe. ATEsc's
  observation: a non-transferable teacher is far more robust on OOD-like inputs.
* ``confidence``: mean max-softmax.
* ``class_concentration``: largest share of one predicted class (a trap often funnels inputs
  into few answers).
* ``attack_sink``: among the probes an attack flips, the largest share sent to one class (a
  backdoor's target class acts as a sink).

And a trigger scan (:mod:`dfkd.teachers.triggers`) on the inverted probes: the smallest stamp
that flips them to each class, and the class whose stamp is an outlier by the anomaly index (a
backdoor's suspected target), with the recovered masks and patterns as a picture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data import Data, load_dataset
from .engine.invert import inverted_probes
from .errors import DfkdError
from .evaluation.domains import from_pixels
from .io.cards import card_normalization, card_path, load_model
from .plugins.atesc import ATEsc
from .recommend import recommend
from .teachers.robustness import PGDProbe
from .teachers.taps import bn_layers
from .teachers.train import freeze
from .teachers.triggers import ScanConfig, save_trigger_png, scan_triggers


def load_for_audit(
    teacher: str | Path | nn.Module, dataset: str | None = None, data_root: str | None = None
) -> tuple[nn.Module, Data]:
    """The teacher and its input space: from its card (no data is read), or from
    ``dataset`` for a ``module:factory`` teacher or a module."""
    cp = None if isinstance(teacher, nn.Module) else card_path(str(teacher))
    if cp is not None and dataset is None:
        model, card = load_model(str(teacher))
        norm = card_normalization(card)
        if norm is None:
            raise DfkdError(f"card '{cp}' has no normalization; pass --dataset")
        space = Data.input_space(card.get("dataset") or "card", tuple(card["input_shape"]),
                                 card["num_classes"], *norm)  # fmt: skip
        return model, space
    if dataset is None:
        raise DfkdError("this teacher has no card; pass --dataset to give its input shape")
    data = load_dataset(dataset, data_root)
    model, _ = load_model(teacher if isinstance(teacher, nn.Module) else str(teacher), data)
    return model, data


def noise_probes(space: Data, n: int, gen: torch.Generator) -> torch.Tensor:
    """Uniform pixel noise, normalised."""
    return from_pixels(torch.rand(n, *space.input_shape, generator=gen), space.mean, space.std)


def probe_signals(
    teacher: nn.Module, x: torch.Tensor, space: Data, probe: PGDProbe
) -> dict[str, float]:
    """The audit's signals on one probe set (see the module docstring)."""
    low, high = space.bounds
    std = torch.tensor(space.std).view(1, -1, 1, 1)
    _, clean, attacked = probe.attack(teacher, x, std, low, high)
    pred, after = clean.argmax(1), attacked.argmax(1)
    flipped = pred != after
    share = torch.bincount(pred, minlength=space.num_classes).float() / len(pred)
    sink = (
        float(torch.bincount(after[flipped], minlength=space.num_classes).max() / flipped.sum())
        if flipped.any()
        else 0.0
    )
    return {
        "robust_fraction": float((~flipped).float().mean()),
        "confidence": float(torch.softmax(clean, 1).amax(1).mean()),
        "class_concentration": float(share.max()),
        "attack_sink": sink,
    }


#: The verdict's rules: (probe set, signal, threshold, what it means). Set between the values
#: measured on the NT benchmark's teachers (three ordinary, four NT; docs/methods.md).
RULES: list[tuple[str, str, float, str]] = [
    ("inverted", "robust_fraction", 0.05, "inverted probes survive PGD"),
    ("noise", "robust_fraction", 0.2, "noise probes survive PGD"),
    ("inverted", "attack_sink", 0.4, "attacks on inverted probes land in one class"),
]


def verdict(
    signals: dict[str, dict[str, float]], has_bn: bool, scan: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Suspected or not, the reasons, and the recommended method and plug-ins."""
    reasons = [
        f"{what}: {100 * signals[probe][key]:.1f} % (≥ {100 * limit:.0f} %)"
        for probe, key, limit, what in RULES
        if signals[probe][key] >= limit
    ]
    robust = bool(reasons)
    if scan and scan["suspected_target"] is not None:
        t = scan["suspected_target"]
        reasons.append(
            f"trigger scan: class {t} flips with a mask of {scan['mask_l1'][t]:.1f} px "
            f"(anomaly index {scan['anomaly_index'][t]:.1f} > {scan['config']['threshold']:g})"
        )
    rec = recommend(has_bn, False, non_transferable=robust,
                    backdoor=bool(scan and scan["suspected_target"] is not None))  # fmt: skip
    return {
        "non_transferable_suspected": bool(reasons),
        "reasons": reasons,
        "recommended_method": rec.method,
        "recommended_plugins": list(rec.plugins),
        "why": rec.why,
    }


def audit_teacher(
    teacher: str | Path | nn.Module,
    dataset: str | None = None,
    *,
    probes: int = 256,
    steps: int = 100,
    seed: int = 0,
    data_root: str | None = None,
    scan: ScanConfig | None = ScanConfig(),  # noqa: B008 (frozen)
    trigger_png: str | Path | None = None,
) -> dict[str, Any]:
    """Audit a teacher from synthetic probes only; returns the report as a dict.

    Args:
        teacher: a card, or ``module:factory``/registry name or module with ``dataset``.
        dataset: only for its input shape and normalisation (no data is read for a card).
        probes: probes per set; steps: inversion steps.
        scan: the trigger scan's options (``None`` skips it); trigger_png: where to save its
            masks and patterns (one row per class: mask, pattern, stamp).
    """
    if probes < 2 or steps < 0:
        raise DfkdError("probes must be ≥ 2 and steps ≥ 0")
    if trigger_png is not None and scan is None:
        raise DfkdError("trigger_png needs the trigger scan; leave scan on")
    model, space = load_for_audit(teacher, dataset, data_root)
    model = freeze(model)
    gen = torch.Generator().manual_seed(seed)
    probe = ATEsc.default_probe(min(space.image_size))
    bns = bn_layers(model)
    sets = {
        "noise": noise_probes(space, probes, gen),
        "inverted": inverted_probes(model, space, probes, steps, seed=seed),
    }
    signals = {k: probe_signals(model, x, space, probe) for k, x in sets.items()}
    found = scan_triggers(model, sets["inverted"], space, scan, seed) if scan else None
    if found is not None and trigger_png is not None:
        save_trigger_png(trigger_png, found)
    summary = {k: v for k, v in found.items() if k not in ("masks", "patterns")} if found else None
    return {
        "teacher": str(teacher) if not isinstance(teacher, nn.Module) else type(teacher).__name__,
        "batchnorm_layers": len(bns),
        "input_shape": list(space.input_shape),
        "probe": {
            "eps": probe.eps,
            "step": probe.step,
            "iters": probe.iters,
            "probes": probes,
            "inversion_steps": steps,
            "seed": seed,
        },
        "signals": signals,
        "trigger_scan": summary,
        **verdict(signals, bool(bns), summary),
    }


def format_report(r: dict[str, Any]) -> str:
    """The audit as a short text report."""
    lines = [
        f"teacher: {r['teacher']}",
        f"BatchNorm: {'yes' if r['batchnorm_layers'] else 'no'} ({r['batchnorm_layers']} layers)",
        "signals (noise / inverted probes):",
    ]
    for key in ("robust_fraction", "confidence", "class_concentration", "attack_sink"):
        a, b = r["signals"]["noise"][key], r["signals"]["inverted"][key]
        lines.append(f"  {key:<20} {100 * a:6.1f} %  / {100 * b:6.1f} %")
    if r.get("trigger_scan"):
        ts = r["trigger_scan"]
        worst = ts["smallest_mask_class"]
        lines.append(
            f"trigger scan: smallest mask class {worst} ({ts['mask_l1'][worst]} px, anomaly "
            f"index {ts['anomaly_index'][worst]:.2f}); suspected backdoor target: "
            f"{ts['suspected_target'] if ts['suspected_target'] is not None else 'none'}"
        )
    verdict_line = "SUSPECTED non-transferable" if r["non_transferable_suspected"] else "ordinary"
    lines.append(f"verdict: {verdict_line}")
    lines += [f"  - {why}" for why in r["reasons"]]
    plugins = "".join(f" --plugin {p}" for p in r["recommended_plugins"])
    lines.append(f"recommended: dfkd distill {r['recommended_method']}{plugins}  ({r['why']})")
    return "\n".join(lines)

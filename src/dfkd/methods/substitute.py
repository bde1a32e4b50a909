"""Sampling-based data-free KD: distil on unlabelled real images of another domain (the setting of
DFND and MosaicKD that KDCI evaluates, here in its plain form), so the shift between the
substitute and the original data is real and measurable."""

from __future__ import annotations

from .base import Method, register_method
from .kd import KD

SUBSTITUTE = register_method(
    Method(
        name="substitute",
        summary="KD on an unlabelled substitute dataset from another domain (--substitute NAME)",
        reference="Sampling-based DFKD as in Chen et al., Learning Student Networks in the Wild "
        "(DFND), CVPR 2021 — without its sample selection",
        defaults={
            "source": {"name": "substitute", "args": {"dataset": None}},
            "g_steps": 0,
            "kd_steps": 50,
            "rounds": 20,
            "batch_size": 128,
            "distill_terms": {"kd_kl": {"weight": 1.0, "T": 4.0}},
            "optimizer": dict(KD.defaults["optimizer"]),  # classical KD's recipe
        },
        presets={
            "digits": {
                **KD.presets["digits"],
                "source": {"name": "substitute", "args": {"dataset": "mnist10k:fit=stretch"}},
            },
            "mnist10k": {
                "source": {"name": "substitute", "args": {"dataset": "fashion-mnist"}},
                "rounds": 20,
                "kd_steps": 75,
                "eval_every": 2,
                "checkpoint_every": 5,
            },
            "fashion-mnist": {
                "source": {"name": "substitute", "args": {"dataset": "mnist10k"}},
                "rounds": 30,
                "kd_steps": 100,
                "eval_every": 3,
                "checkpoint_every": 5,
            },
        },
    )
)

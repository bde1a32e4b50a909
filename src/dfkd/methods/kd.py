"""Classical knowledge distillation with the original data (Hinton et al., 2015): the ceiling
every data-free method is measured against."""

from __future__ import annotations

from .base import Method, register_method

KD = register_method(
    Method(
        name="kd",
        summary="Classical KD on real data: T²·KL at temperature T plus cross-entropy on labels",
        reference="Hinton, Vinyals & Dean, Distilling the Knowledge in a Neural Network (2015)",
        data_free=False,
        defaults={
            "source": {"name": "real", "args": {"split": "train"}},
            "g_steps": 0,
            "kd_steps": 50,
            "rounds": 20,
            "batch_size": 128,
            "distill_terms": {"kd_kl": {"weight": 0.9, "T": 4.0}, "ce": {"weight": 0.1}},
            "optimizer": {
                "name": "sgd",
                "lr": 0.05,
                "momentum": 0.9,
                "nesterov": True,
                "weight_decay": 5e-4,
                "schedule": "cosine",
            },
        },
        presets={
            "digits": {
                "rounds": 30,
                "kd_steps": 12,
                "batch_size": 64,
                "eval_every": 3,
                "checkpoint_every": 10,
            },
            "mnist10k": {"rounds": 20, "kd_steps": 63, "eval_every": 2, "checkpoint_every": 5},
            "fashion-mnist": {
                "rounds": 30,
                "kd_steps": 469,
                "eval_every": 3,
                "checkpoint_every": 5,
            },
        },
    )
)

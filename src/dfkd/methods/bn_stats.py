"""Statistical feature matching (seed 003): invert pixels so that the teacher's feature
statistics (BatchNorm running statistics, or a statistics file) are matched, then distil."""

from __future__ import annotations

from .base import Method, register_method

BN_STATS = register_method(
    Method(
        name="bn_stats",
        summary="Statistical feature matching: pixels matched to the teacher's BN statistics "
        "(or a --stats file), no class prior",
        reference="DFDistill (seed 003) statistical feature matching; Yin et al. 2020 BN term",
        defaults={
            "source": {
                "name": "pixels",
                "args": {
                    "lr": 0.1,
                    "betas": [0.5, 0.9],
                    "jitter": 1,
                    "bank": 8192,
                    "synth_batch_size": 128,
                },
            },
            "g_steps": 100,
            "kd_steps": 50,
            "rounds": 100,
            "batch_size": 128,
            "synth_terms": {
                "stat_match": {"weight": 1.0, "first_multiplier": 10.0},
                "tv": {"weight": 1e-4, "p": 2},
                "l2": {"weight": 1e-5},
            },
            "distill_terms": {"kd_kl": {"weight": 1.0, "T": 8.0}},
            "optimizer": {
                "name": "sgd",
                "lr": 0.05,
                "momentum": 0.9,
                "weight_decay": 5e-4,
                "schedule": "cosine",
            },
            "eval_every": 10,
            "checkpoint_every": 10,
        },
        presets={
            "digits": {
                "source": {
                    "name": "pixels",
                    "args": {"lr": 0.1, "jitter": 1, "bank": 2048, "synth_batch_size": 128},
                },
                "g_steps": 40,
                "kd_steps": 20,
                "rounds": 10,
                "batch_size": 64,
                "eval_every": 5,
                "checkpoint_every": 5,
            },
        },
    )
)

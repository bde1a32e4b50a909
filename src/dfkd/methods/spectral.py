"""Spectral feature matching (seed 003): invert pixels so that the amplitude spectra of the
teacher's activations match reference spectra from a statistics file."""

from __future__ import annotations

from .base import Method, register_method

SPECTRAL = register_method(
    Method(
        name="spectral",
        summary="Spectral feature matching: pixels matched to the teacher's activation spectra "
        "from a --stats file (dfkd stats collect)",
        reference="DFDistill (seed 003) spectral feature matching, FFT form",
        defaults={
            "source": {
                "name": "pixels",
                "args": {
                    "lr": 0.1,
                    "betas": [0.5, 0.9],
                    "jitter": 0,
                    "bank": 8192,
                    "synth_batch_size": 128,
                },
            },
            "g_steps": 100,
            "kd_steps": 50,
            "rounds": 100,
            "batch_size": 128,
            # stat_match (channel statistics from the same file) is an option: set its weight
            "synth_terms": {
                "spectral_stats": {"weight": 1.0},
                "stat_match": {"weight": 0.0},
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

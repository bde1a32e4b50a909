"""Spectral feature matching (seed 003): invert pixels so that the amplitude spectra of the
teacher's activations match reference spectra from a statistics file."""

from __future__ import annotations

from .base import (
    PIXEL_DIGITS,
    PIXEL_ROUNDS,
    Method,
    cpu_pixels,
    register_method,
    sgd_cosine,
)

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
            **PIXEL_ROUNDS,
            # stat_match (channel statistics from the same file) is an option: set its weight
            "synth_terms": {
                "spectral_stats": {"weight": 1.0},
                "stat_match": {"weight": 0.0},
                "tv": {"weight": 1e-4, "p": 2},
                "l2": {"weight": 1e-5},
            },
            # the seed's teacher-vs-student form (student spectra through 1×1 adapters against
            # the teacher's, on the synthetic batch) is an option: set its weight
            "distill_terms": {
                "kd_kl": {"weight": 1.0, "T": 8.0},
                "spectral_pair": {"weight": 0.0},
            },
            "optimizer": sgd_cosine(0.05, 5e-4),
        },
        presets={
            "digits": {
                **PIXEL_DIGITS,
            },
            "mnist10k": cpu_pixels(25, lr=0.1, jitter=1),
            "fashion-mnist": cpu_pixels(
                40, lr=0.1, jitter=1, flip=True, replay_shift=2, replay_flip=True
            ),
        },
    )
)

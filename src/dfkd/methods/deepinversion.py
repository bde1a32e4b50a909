"""DeepInversion (Yin et al., CVPR 2020): invert pixels so the teacher's BatchNorm statistics
match, with image priors and a class prior toward *given* targets (every class in turn, as the
authors' script assigns them); Adaptive DeepInversion's competition term is an option."""

from __future__ import annotations

from .base import (
    PIXEL_DIGITS,
    PROCEDURAL_START,
    Method,
    cpu_pixels,
    register_method,
    sgd_cosine,
)

DEEPINVERSION = register_method(
    Method(
        name="deepinversion",
        summary="DeepInversion: pixel inversion with BN statistics, class prior and image priors "
        "(ADI competition: synth_terms.competition.weight; without statistics: 25 steps from "
        "procedural images, ¾ of each replay fresh procedural images)",
        reference="Yin et al., Dreaming to Distill, CVPR 2020 (CMI benchmark configuration)",
        defaults={
            "source": {
                "name": "pixels",
                "args": {
                    "lr": 0.1,
                    "betas": [0.5, 0.99],
                    "jitter": 2,
                    "flip": True,
                    "bank": 40960,
                    "synth_batch_size": 256,
                    "targets": True,
                },
            },
            "g_steps": 1000,
            "kd_steps": 400,
            "rounds": 200,
            "batch_size": 256,
            "synth_terms": {
                "stat_match": {"weight": 10.0},
                "class_target": {"weight": 1.0},
                "tv": {"weight": 1e-3, "p": 2},
                "competition": {"weight": 0.0, "T": 3.0},
            },
            # without statistics (a BN-free teacher, no file): pixels that start from procedural
            # images and take 25 steps per batch, not 1,000 from noise (97.3 % of MNIST-10k
            # `cnn-raw` at ten minutes, against 88.5 with 100 steps and 49.6 at five from noise;
            # zoo.jsonl, pinit10-*; docs/methods.md, "Procedural images"); three quarters of each
            # replayed batch fresh procedural images (88.0 % of Fashion-MNIST `cnn-nobn` at five
            # minutes against 80.9 without and 86.4 with half; rmix-*)
            "statistics_free_source": {**PROCEDURAL_START, "replay_procedural": 0.75},
            "statistics_free_g_steps": 25,
            "distill_terms": {"kd_kl": {"weight": 1.0, "T": 20.0}},
            "optimizer": sgd_cosine(0.1, 1e-4),
            "eval_every": 10,
            "checkpoint_every": 10,
        },
        presets={
            "digits": {
                "source": {
                    "name": "pixels",
                    "args": {
                        "lr": 0.1,
                        "jitter": 1,
                        "flip": False,
                        "bank": 2048,
                        "synth_batch_size": 128,
                        "targets": True,
                    },
                },
                **PIXEL_DIGITS,
                "distill_terms": {"kd_kl": {"T": 4.0}},
                "optimizer": {"lr": 0.05},
            },
            "mnist10k": {
                **cpu_pixels(25, lr=0.1, jitter=1, flip=False, targets=True),
                "distill_terms": {"kd_kl": {"T": 4.0}},
                "optimizer": {"lr": 0.05},
            },
            "fashion-mnist": {
                **cpu_pixels(
                    40, lr=0.1, jitter=1, flip=True, replay_shift=2, replay_flip=True, targets=True
                ),
                "distill_terms": {"kd_kl": {"T": 4.0}},
                "optimizer": {"lr": 0.05},
            },
        },
    )
)

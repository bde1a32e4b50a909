"""Statistical feature matching (seed 003): invert pixels so that the teacher's feature
statistics (BatchNorm running statistics, or a statistics file) are matched, then distil."""

from __future__ import annotations

from .base import (
    PIXEL_DIGITS,
    PIXEL_ROUNDS,
    PROCEDURAL_START,
    Method,
    batch_balance,
    cpu_pixels,
    register_method,
    sgd_cosine,
)

BN_STATS = register_method(
    Method(
        name="bn_stats",
        summary="Statistical feature matching: pixels matched to the teacher's BN statistics "
        "(or a --stats file), no class prior (without statistics: DAFL's class terms, pixels "
        "started from procedural images)",
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
            **PIXEL_ROUNDS,
            "synth_terms": {
                "stat_match": {"weight": 1.0, "first_multiplier": 10.0},
                "tv": {"weight": 1e-4, "p": 2},
                "l2": {"weight": 1e-5},
            },
            # without statistics (a BN-free teacher, no file), DAFL's class terms take the
            # statistics term's place: 13-15 % of the teacher with the image priors alone,
            # 67-70 % with these (MNIST-10k zoo, 5 min; benchmarks/explore/zoo.jsonl, nostats-*)
            "statistics_free": {"one_hot": {"weight": 1.0}, **batch_balance()},
            # and pixels that start from procedural images, not Gaussian noise: 93.6 % of each
            # BN-free MNIST-10k teacher at ten minutes (zoo.jsonl, pinit10-*; 68.1-87.0 % from
            # noise at five: results/zoo_distill_nostats_5m.md at commit 8a1e61d)
            "statistics_free_source": PROCEDURAL_START,
            "distill_terms": {"kd_kl": {"weight": 1.0, "T": 8.0}},
            "optimizer": sgd_cosine(0.05, 5e-4),
        },
        presets={
            "digits": {
                "source": {
                    "name": "pixels",
                    "args": {"lr": 0.1, "jitter": 1, "bank": 2048, "synth_batch_size": 128},
                },
                **PIXEL_DIGITS,
            },
            "mnist10k": cpu_pixels(25, lr=0.1, jitter=1),
            # Fashion-MNIST: the ~10k inverted images are replayed ~50 times each; shifted and
            # mirrored replays lift the student from 68.7 to 80.6 %
            # (benchmarks/explore/fashion.jsonl)
            "fashion-mnist": cpu_pixels(
                40, lr=0.1, jitter=1, flip=True, replay_shift=2, replay_flip=True
            ),
        },
    )
)

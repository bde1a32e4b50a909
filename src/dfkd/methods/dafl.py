"""DAFL (Chen et al., ICCV 2019): a generator trained with the teacher as discriminator."""

from __future__ import annotations

from .base import Method, cpu_generator, register_method

DAFL = register_method(
    Method(
        name="dafl",
        summary="DAFL: generator with one-hot, information-entropy and activation terms",
        reference="Chen et al., Data-Free Learning of Student Networks, ICCV 2019",
        defaults={
            "source": {
                "name": "generator",
                "args": {
                    "model": "dafl_generator",
                    "nz": 100,
                    "lr": 0.2,
                    "betas": [0.5, 0.999],
                    "reuse_drawn": True,  # DAFL trains S on the batch G just drew
                },
            },
            "g_steps": 1,
            "kd_steps": 1,
            "rounds": 24000,  # MNIST in the paper: 200 epochs × 120 iterations
            "batch_size": 512,
            # DAFL sums p̄ log10 p̄ with weight 5; with the natural log that is 5 / ln 10 ≈ 2.17
            "synth_terms": {
                "one_hot": {"weight": 1.0},
                "info_entropy": {"weight": 2.17},
                "activation": {"weight": 0.1},
            },
            "distill_terms": {"kd_kl": {"weight": 1.0, "T": 1.0}},
            "optimizer": {"name": "adam", "lr": 2e-3, "weight_decay": 0.0, "schedule": "constant"},
            "eval_every": 1200,
            "checkpoint_every": 1200,
        },
        presets={
            "digits": {
                "source": {
                    "name": "generator",
                    "args": {"model": "light_generator", "nz": 32, "lr": 0.01},
                },
                "rounds": 60,
                "kd_steps": 5,
                "batch_size": 128,
                "eval_every": 20,
                "checkpoint_every": 30,
                "optimizer": {"lr": 0.01},
            },
            # DAFL decays the student's rate (here: cosine). On this budget the student declines
            # as a fast generator drifts from natural-looking samples; a slower generator and a
            # replay bank of its last 64 batches hold it (benchmarks/explore/mnist10k-tune.jsonl)
            "mnist10k": {
                **cpu_generator(400, lr=0.002, bank=16384),
                "optimizer": {"lr": 0.01, "schedule": "cosine"},
            },
            "fashion-mnist": {
                **cpu_generator(400, lr=0.002, bank=16384),
                "optimizer": {"lr": 0.01, "schedule": "cosine"},
            },
        },
    )
)

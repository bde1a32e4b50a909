"""NAYER (Tran et al., CVPR 2024): a kept generator behind a noisy layer re-drawn for every batch,
constant class embeddings as its input, and a data pool the student replays."""

from __future__ import annotations

from typing import Any

from .base import Method, generator_statistics_free, register_method, sgd_cosine

#: the synthesis objective of the authors' scripts: BN statistics ×10, cross-entropy against
#: the batch's target classes ×0.5, the decision-adversarial term ×1.33 (after the warm-up)
NAYER_SYNTH_TERMS = {
    "stat_match": {"weight": 10.0},
    "class_target": {"weight": 0.5},
    "decision_adversarial": {"weight": 1.33, "T": 1.0},
}


def _source(**args: Any) -> dict[str, Any]:
    return {"name": "noisy_generator", "args": {"lr": 4e-3, **args}}


def _cpu(rounds: int, **args: Any) -> dict[str, Any]:
    """A preset for 28×28 data on a 2-core CPU: the light generator, 256 images per round in
    10 steps, 50 student steps of 256 from the pool, a warm-up of 10 % of the rounds."""
    every = max(1, rounds // 20)
    return {
        "source": _source(
            model="light_generator",
            nz=64,
            embedding_dim=64,
            bank=32768,
            synth_batch_size=256,
            g_life=20,
            **args,
        ),
        "g_steps": 10,
        "kd_steps": 50,
        "rounds": rounds,
        "warmup_rounds": max(1, rounds // 10),
        "batch_size": 256,
        "distill_terms": {"kd_kl": {"T": 4.0}},
        "optimizer": {"lr": 0.05},
        "eval_every": every,
        "checkpoint_every": every,
    }


NAYER = register_method(
    Method(
        name="nayer",
        summary="NAYER: kept generator behind a per-batch random noisy layer on constant class "
        "embeddings, replayed data pool (BN statistics + class target + decision adversarial)",
        reference="Tran et al., NAYER: Noisy Layer Data Generation for Efficient and Effective "
        "Data-free Knowledge Distillation, CVPR 2024 (authors' CIFAR-10 script)",
        defaults={
            # CIFAR-10: 20 warm-up epochs of 10 batches, then 100 epochs of 2 batches (30
            # generator steps each) and 400 student steps; G re-initialised every 10 epochs
            "source": _source(
                model="dafl_generator",
                nz=1000,
                embedding_dim=512,
                bank=160000,
                synth_batch_size=400,
                g_life=20,
                shift=4,
                flip=True,
                replay_shift=4,
                replay_flip=True,
            ),
            "g_steps": 30,
            "kd_steps": 200,
            "rounds": 400,
            "warmup_rounds": 200,
            "batch_size": 512,
            "synth_terms": NAYER_SYNTH_TERMS,
            "statistics_free": generator_statistics_free(),
            "distill_terms": {"kd_kl": {"weight": 1.0, "T": 20.0}},
            "optimizer": sgd_cosine(0.2, 1e-4),
            "eval_every": 20,
            "checkpoint_every": 20,
        },
        presets={
            "digits": {
                "source": _source(
                    model="light_generator",
                    nz=32,
                    embedding_dim=16,
                    bank=2048,
                    synth_batch_size=64,
                    g_life=6,
                    shift=1,
                    replay_shift=1,
                ),
                "g_steps": 5,
                "kd_steps": 20,
                "rounds": 12,
                "warmup_rounds": 2,
                "batch_size": 64,
                "distill_terms": {"kd_kl": {"T": 4.0}},
                "optimizer": {"lr": 0.05},
                "eval_every": 6,
                "checkpoint_every": 6,
            },
            "mnist10k": _cpu(100),
            "fashion-mnist": _cpu(160, flip=True, replay_flip=True),
        },
    )
)

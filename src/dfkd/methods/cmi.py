"""CMI (Fang et al., IJCAI 2021): contrastive model inversion — a generator drawn afresh for
every batch, BN statistics, class targets, the decision-adversarial term and an instance-
contrastive term against a memory of earlier samples; a data pool the student replays."""

from __future__ import annotations

from typing import Any

from .base import Method, generator_statistics_free, register_method, sgd_cosine

#: the synthesis objective of the authors' CIFAR script (the contrastive term, 0.8 at T 0.2,
#: is the source's own: it keeps the projection head and the memory)
CMI_SYNTH_TERMS = {
    "stat_match": {"weight": 1.0},
    "class_target": {"weight": 1.0},
    "decision_adversarial": {"weight": 0.5, "T": 1.0},
}


def _source(**args: Any) -> dict[str, Any]:
    return {"name": "cmi_generator", "args": {"lr": 1e-3, "lr_z": 1e-3, **args}}


def _cpu(rounds: int, **args: Any) -> dict[str, Any]:
    """A preset for 28×28 data on a 2-core CPU: the light generator, 256 images per round in
    20 steps, 50 student steps of 256 from the pool."""
    every = max(1, rounds // 20)
    return {
        "source": _source(
            model="light_generator",
            nz=64,
            bank=32768,
            synth_batch_size=256,
            memory=16384,
            negatives=1024,
            head_dim=64,
            lr=5e-3,
            lr_z=5e-3,
            **args,
        ),
        "g_steps": 20,
        "kd_steps": 50,
        "rounds": rounds,
        "batch_size": 256,
        "distill_terms": {"kd_kl": {"T": 4.0}},
        "optimizer": {"lr": 0.05},
        "eval_every": every,
        "checkpoint_every": every,
    }


CMI = register_method(
    Method(
        name="cmi",
        summary="CMI: a new generator per batch (BN statistics + class target + decision "
        "adversarial + instance-contrastive term against a memory), replayed data pool",
        reference="Fang et al., Contrastive Model Inversion for Data-Free Knowledge "
        "Distillation, IJCAI 2021 (authors' CIFAR-10 script)",
        defaults={
            # CIFAR-10: 200 epochs of one batch of 256 synthesised in 200 steps, then 400
            # student steps
            "source": _source(
                model="dafl_generator",
                nz=256,
                bank=51200,
                synth_batch_size=256,
                memory=40960,
                negatives=4096,
                head_dim=256,
                shift=4,
                flip=True,
                replay_shift=4,
                replay_flip=True,
            ),
            "g_steps": 200,
            "kd_steps": 400,
            "rounds": 200,
            "batch_size": 256,
            "synth_terms": CMI_SYNTH_TERMS,
            "statistics_free": generator_statistics_free(),
            "distill_terms": {"kd_kl": {"weight": 1.0, "T": 20.0}},
            "optimizer": sgd_cosine(0.1, 1e-4),
            "eval_every": 10,
            "checkpoint_every": 10,
        },
        presets={
            "digits": {
                "source": _source(
                    model="light_generator",
                    nz=32,
                    bank=2048,
                    synth_batch_size=64,
                    memory=1024,
                    negatives=256,
                    head_dim=32,
                    shift=1,
                    replay_shift=1,
                    lr=5e-3,
                    lr_z=5e-3,
                ),
                "g_steps": 8,
                "kd_steps": 20,
                "rounds": 12,
                "batch_size": 64,
                "distill_terms": {"kd_kl": {"T": 4.0}},
                "optimizer": {"lr": 0.05},
                "eval_every": 6,
                "checkpoint_every": 6,
            },
            "mnist10k": _cpu(60),
            "fashion-mnist": _cpu(100, flip=True, replay_flip=True),
        },
    )
)

"""KD on procedural images: the student is taught the teacher's answers on images drawn from
natural-image priors alone (1/f noise, dead leaves). Needs no data, no statistics, no
generator: the method for a teacher that comes with nothing but itself."""

from __future__ import annotations

from .base import Method, register_method
from .kd import KD

PROCEDURAL = register_method(
    Method(
        name="procedural",
        summary="KD on procedural images (1/f noise, dead leaves) drawn afresh: no data, no stats",
        reference="The image programs of Baradad et al., Learning to See by Looking at Noise "
        "(NeurIPS 2021), as distillation data",
        defaults={
            "source": {"name": "procedural", "args": {}},
            "g_steps": 0,
            "kd_steps": 50,
            "rounds": 20,
            "batch_size": 128,
            "distill_terms": {"kd_kl": {"weight": 1.0, "T": 4.0}},
            "optimizer": dict(KD.defaults["optimizer"]),  # classical KD's recipe
        },
        presets={
            "digits": {**KD.presets["digits"]},
            "mnist10k": {"rounds": 20, "kd_steps": 75, "eval_every": 2, "checkpoint_every": 5},
            "fashion-mnist": {
                "rounds": 30,
                "kd_steps": 100,
                "eval_every": 3,
                "checkpoint_every": 5,
            },
        },
    )
)

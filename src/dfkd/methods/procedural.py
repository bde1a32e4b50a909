"""KD on procedural images: the student is taught the teacher's answers on images drawn from
natural-image priors alone (1/f noise, dead leaves). Needs no data, no statistics, no
generator: the method for a teacher that comes with nothing but itself."""

from __future__ import annotations

from .base import Method, register_method
from .substitute import SUBSTITUTE

PROCEDURAL = register_method(
    Method(
        name="procedural",
        summary="KD on procedural images (1/f noise, dead leaves) drawn afresh: no data, no stats",
        reference="The image programs of Baradad et al., Learning to See by Looking at Noise "
        "(NeurIPS 2021), as distillation data",
        # the substitute method's recipe (classical KD's optimiser, its step counts), on images
        # that no dataset holds
        defaults={**SUBSTITUTE.defaults, "source": {"name": "procedural", "args": {}}},
        presets={
            name: {k: v for k, v in preset.items() if k != "source"}
            for name, preset in SUBSTITUTE.presets.items()
        },
    )
)

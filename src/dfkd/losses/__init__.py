"""Loss terms: pure functions (tested against naive references) and their registry of named
objective terms that the loop combines as a weighted sum."""

from __future__ import annotations

from . import synth_terms as _synth_terms  # noqa: F401  (registers the synthesis terms)
from .kd import cross_entropy, js_div, kl_div, l1_logits, rescale_logits, standardize_logits
from .terms import TERMS, StepContext, register_term

__all__ = [
    "TERMS",
    "StepContext",
    "cross_entropy",
    "js_div",
    "kl_div",
    "l1_logits",
    "register_term",
    "rescale_logits",
    "standardize_logits",
]

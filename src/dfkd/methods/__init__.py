"""Methods: named compositions of a source, objective terms and default hyper-parameters."""

from __future__ import annotations

from . import (  # noqa: F401  (built-ins)
    bn_stats,
    cmi,
    dafl,
    deepinversion,
    dfad,
    dfq,
    fast,
    kd,
    nayer,
    procedural,
    spectral,
    substitute,
    ta_dfkd,
)
from .base import METHODS, Method, register_method

__all__ = ["METHODS", "Method", "register_method"]

"""Methods: named compositions of a source, objective terms and default hyper-parameters."""

from __future__ import annotations

from . import kd  # noqa: F401  (registers the built-in methods)
from .base import METHODS, Method, register_method

__all__ = ["METHODS", "Method", "register_method"]

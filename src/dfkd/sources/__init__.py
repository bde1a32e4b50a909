"""Where the loop's inputs come from: real data now; pixel inversion and generators plug in here."""

from __future__ import annotations

from .base import SOURCES, Batch, Source, SourceEnv, build_source, register_source
from .real import RealData

__all__ = ["SOURCES", "Batch", "RealData", "Source", "SourceEnv", "build_source", "register_source"]

"""Where the loop's inputs come from: real data now; pixel inversion and generators plug in here."""

from __future__ import annotations

from .bank import MemoryBank
from .base import SOURCES, Batch, Source, SourceEnv, build_source, register_source
from .cmi import CMISource
from .generator import GeneratorSource
from .meta_generator import MetaGeneratorSource
from .noisy_generator import NoisyGeneratorSource
from .pixels import PixelInversion
from .procedural import ProceduralImages
from .real import RealData

__all__ = [
    "SOURCES",
    "Batch",
    "CMISource",
    "GeneratorSource",
    "MemoryBank",
    "MetaGeneratorSource",
    "NoisyGeneratorSource",
    "PixelInversion",
    "ProceduralImages",
    "RealData",
    "Source",
    "SourceEnv",
    "build_source",
    "register_source",
]

"""The engine: the one loop every method runs, and the parts it assembles."""

from .run import run, seed_all

__all__ = ["run", "seed_all"]

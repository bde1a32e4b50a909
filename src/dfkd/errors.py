"""User-facing errors: one line that says what went wrong and what to do."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DfkdError(Exception):
    """An error caused by the user's input; the CLI prints it as one line and exits with code 2."""


class ConfigError(DfkdError, ValueError):
    """A configuration value, key or name is invalid."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


class NonFiniteError(DfkdError):
    """A loss term or a model's output became NaN or infinite."""

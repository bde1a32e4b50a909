"""Plug-ins: optional parts that modify a run only through the values they return."""

from __future__ import annotations

from . import abd as _abd  # noqa: F401  (registers abd_sv, abd_sr)
from . import atesc as _atesc  # noqa: F401  (registers atesc)
from . import balance as _balance  # noqa: F401  (registers class_balance)
from . import confidence as _confidence  # noqa: F401  (registers confidence_weighting)
from . import ema as _ema  # noqa: F401  (registers ema)
from . import gmm as _gmm  # noqa: F401  (registers gmm_selection)
from . import kdci as _kdci  # noqa: F401  (registers kdci)
from . import ood_escape as _ood_escape  # noqa: F401  (registers ood_escape)
from . import trigger_filter as _trigger_filter  # noqa: F401  (registers trigger_filter)
from .base import PLUGINS, Plugin, PluginSet, build_plugins, parse_plugin_spec, register_plugin

__all__ = [
    "PLUGINS",
    "Plugin",
    "PluginSet",
    "build_plugins",
    "parse_plugin_spec",
    "register_plugin",
]

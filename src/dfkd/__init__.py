"""dfkd: data-free knowledge distillation for PyTorch.

Quick start::

    import dfkd
    card = dfkd.train_teacher("digits", "lenet5", epochs=30, out="runs/teacher")
    metrics = dfkd.distill("runs/teacher", "lenet5_half", method="kd", dataset="digits",
                           out="runs/kd")
"""

from __future__ import annotations

from .api import (
    collect_teacher_stats,
    distill,
    evaluate,
    list_datasets,
    list_methods,
    list_plugins,
    resolve_config,
)
from .audit import audit_teacher
from .config import RunConfig
from .data import Data, load_dataset, register_dataset
from .errors import ConfigError, DfkdError
from .io.cards import load_model, save_model
from .io.compare import compare_runs
from .io.export import export_model
from .losses import register_term
from .methods import Method, register_method
from .models import create_generator, create_model, list_models, register_model
from .plugins import Plugin, register_plugin
from .sources import Batch, Source, register_source
from .teachers.imported import import_teacher
from .teachers.nt import train_nt_teacher
from .teachers.stats import TeacherStats
from .teachers.train import train_teacher
from .version import __version__

__all__ = [
    "Batch",
    "ConfigError",
    "Data",
    "DfkdError",
    "Method",
    "Plugin",
    "RunConfig",
    "Source",
    "TeacherStats",
    "__version__",
    "audit_teacher",
    "collect_teacher_stats",
    "compare_runs",
    "create_generator",
    "create_model",
    "distill",
    "evaluate",
    "export_model",
    "import_teacher",
    "list_datasets",
    "list_methods",
    "list_models",
    "list_plugins",
    "load_dataset",
    "load_model",
    "register_dataset",
    "register_method",
    "register_model",
    "register_plugin",
    "register_source",
    "register_term",
    "resolve_config",
    "save_model",
    "train_nt_teacher",
    "train_teacher",
]

"""The engine: the one loop every method runs (``loop``), and its parts — assembling and
checking (``parts``), the objective (``objective``), the optimiser and schedule (``optim``), the
run state that is the checkpoint (``state``), reporting (``report``) and launching (``run``)."""

from .loop import Loop
from .objective import BoundTerm, TermMeter, bind_terms, weighted_sum
from .optim import lr_at, make_optimizer
from .parts import RunParts, assemble, build_parts
from .report import CHECKPOINT, Reporter
from .run import run, seed_all
from .state import RunState

__all__ = [
    "CHECKPOINT",
    "BoundTerm",
    "Loop",
    "Reporter",
    "RunParts",
    "RunState",
    "TermMeter",
    "assemble",
    "bind_terms",
    "build_parts",
    "lr_at",
    "make_optimizer",
    "run",
    "seed_all",
    "weighted_sum",
]

"""Sizing a run to a wall-clock budget (``time_budget``) on the machine it runs on.

A budgeted run first times a throwaway copy of its own loop — a few synthesis and student steps
after two warm-up steps each (median per step), one evaluation and one checkpoint — then sets
``rounds`` (and the evaluation and checkpoint intervals, keeping the preset's number of each)
so that the whole call, calibration included, fits the budget (time left over of less than a
round goes to more student steps per round). While the run goes, a :class:`Pacer` times its
rounds: it re-plans them when they would end the run far from its deadline, and ends the run
early when one more round would pass it. Its ``config.yaml`` records the rounds and each
re-plan, so it re-creates the run exactly on any machine, and ``metrics.json`` records how they
were chosen (``budget``).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig, parse_duration
from ..errors import ConfigError
from ..io.files import save_state

#: share of the budget kept back for what follows the last round (the student's files)
RESERVE = 0.02
#: share of the budget spent timing steps and rounds (each at least STEPS times, at most
#: MAX_STEPS)
TIMING = 0.03
STEPS, MAX_STEPS, WARMUP = 3, 500, 2
#: a run re-plans when its rounds would end it past its deadline, or this share of the
#: budget before it …
REPLAN_TOLERANCE = 0.04
#: … at most this often, each time after this many student rounds and this share of the budget
MAX_REPLANS, REPLAN_ROUNDS, REPLAN_AFTER = 3, 2, 0.1


@dataclass(frozen=True)
class Costs:
    """Measured seconds: one round, one evaluation, one checkpoint (0 when the run writes
    none), what the call had spent before sizing, and one student step."""

    round_s: float
    eval_s: float
    checkpoint_s: float
    spent_s: float
    distill_s: float = 0.0


def due(rounds: int, every: int) -> int:
    """How many rounds of ``rounds`` end with an evaluation (or checkpoint) every ``every``
    rounds, the last round always included."""
    return rounds // every + (rounds % every != 0)


def warmup_share(cfg: RunConfig, rounds: int) -> int:
    """The warm-up of a ``rounds``-round plan: the preset's share of its rounds (at least one
    round when the preset has any, and never every round)."""
    if not cfg.warmup_rounds:
        return 0
    return max(1, min(rounds - 1, round(cfg.warmup_rounds * rounds / cfg.rounds)))


def plan(cfg: RunConfig, costs: Costs, budget_s: float) -> RunConfig:
    """``cfg`` with as many rounds as fit in what is left of ``budget_s``, the preset's share of
    them as warm-up, and as many evaluations and checkpoints as the preset had; time left over
    of less than one round goes to more student steps per round (the rounds' synthesis keeps
    the preset's shape)."""
    n_eval = math.ceil(cfg.rounds / cfg.eval_every)
    n_ckpt = math.ceil(cfg.rounds / cfg.checkpoint_every)

    def total(rounds: int) -> float:  # rounds, evaluations and checkpoints of a plan
        evals = due(rounds, max(1, rounds // n_eval))
        warmup = warmup_share(cfg, rounds) * cfg.kd_steps * costs.distill_s
        return (
            rounds * costs.round_s
            - warmup
            + evals * costs.eval_s
            + due(rounds, max(1, rounds // n_ckpt)) * costs.checkpoint_s
        )

    left = budget_s * (1 - RESERVE) - costs.spent_s
    rounds = max(0, int((left - n_eval * costs.eval_s - n_ckpt * costs.checkpoint_s)
                        // costs.round_s))  # fmt: skip
    while rounds > 0 and total(rounds) > left:
        rounds -= 1
    while total(rounds + 1) <= left:
        rounds += 1
    least = 2 if cfg.warmup_rounds else 1  # a student round, after a warm-up round if any
    if rounds < least:
        need = math.ceil((costs.spent_s + total(least)) / (1 - RESERVE))
        warm = " (after a warm-up round)" if cfg.warmup_rounds else ""
        raise ConfigError(
            f"time budget of {budget_s:.0f} s is too short: setting up took "
            f"{costs.spent_s:.0f} s and one round takes {costs.round_s:.1f} s on this machine"
            f"{warm}; give at least {need} s"
        )
    extra = 0
    if cfg.kd_steps and costs.distill_s > 0:
        student_rounds = rounds - warmup_share(cfg, rounds)
        extra = int((left - total(rounds)) // (student_rounds * costs.distill_s))
    return dataclasses.replace(
        cfg,
        rounds=rounds,
        warmup_rounds=warmup_share(cfg, rounds),
        kd_steps=cfg.kd_steps + extra,
        eval_every=max(1, rounds // n_eval),
        checkpoint_every=max(1, rounds // n_ckpt),
        time_budget=None,
    )


def measure(loop: Any, seconds: float, writes: bool, started: float) -> Costs:
    """Time ``loop`` (a throwaway copy of the run's loop) for about ``seconds``: whole rounds
    when a round is short enough to time a few of them (what a round really costs, steps that
    reuse a drawn batch included), else each kind of step; an evaluation; and a checkpoint
    when the run writes them."""
    fabric, cfg = loop.fabric, loop.cfg
    sync = _synchronizer(fabric.device)
    # under DDP every rank must make the same calls (a step is a collective): fixed counts, and
    # rank 0 decides whether rounds are timed
    window = 0.0 if fabric.world_size > 1 else seconds
    synth = _per_call(loop.synthesis_step, window / 4, sync) if cfg.g_steps else 0.0
    distill = _per_call(loop.distill_step, window / 4, sync) if cfg.kd_steps else 0.0
    round_s = cfg.g_steps * synth + cfg.kd_steps * distill
    if fabric.broadcast((WARMUP + STEPS) * round_s <= seconds / 2, src=0):
        round_s = _per_call(lambda: _round(loop), window / 2, sync)
    t0 = time.perf_counter()
    loop.report.evaluate(loop.deployed, loop.state, {})
    eval_s = time.perf_counter() - t0
    ckpt_s = 0.0
    if writes:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            save_state(Path(tmp) / "checkpoint.safetensors", loop.state.state_dict())
        ckpt_s = time.perf_counter() - t0
    return Costs(round_s, eval_s, ckpt_s, time.time() - started, distill)


def _round(loop: Any) -> None:
    """A round's steps, in the loop's order (no evaluation or checkpoint)."""
    for _ in range(loop.cfg.g_steps):
        loop.synthesis_step()
    for _ in range(loop.cfg.kd_steps):
        loop.distill_step()


def _per_call(step: Callable[[], None], seconds: float, sync: Callable[[], None]) -> float:
    """Median seconds of ``step`` after :data:`WARMUP` calls, over at least :data:`STEPS`
    calls and about ``seconds`` (the median: a stall of the machine is not the step's cost)."""
    for _ in range(WARMUP):
        step()
    sync()
    times: list[float] = []
    t_end = time.perf_counter() + seconds
    while len(times) < STEPS or (time.perf_counter() < t_end and len(times) < MAX_STEPS):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def size_run(
    cfg: RunConfig, trial: Callable[[], Any], fabric: Any, writes: bool, started: float
) -> tuple[RunConfig, dict[str, Any]]:
    """``cfg`` sized to its ``time_budget`` by timing ``trial()`` (a throwaway loop built from
    copies of the run's parts), and the record of it; every process gets rank 0's plan."""
    budget_s = parse_duration(cfg.time_budget)  # type: ignore[arg-type]
    costs = measure(trial(), TIMING * budget_s, writes, started)
    sized = plan(cfg, costs, budget_s)
    rounds, eval_every, ckpt = fabric.broadcast(
        (sized.rounds, sized.eval_every, sized.checkpoint_every), src=0
    )
    sized = dataclasses.replace(sized, rounds=rounds, eval_every=eval_every,
                                checkpoint_every=ckpt)  # fmt: skip
    return sized, _record(costs, budget_s, sized)


@dataclass
class Pacer:
    """Keeps a sized run to its budget from the time its own rounds take.

    After each round: when the rounds left, at the median cost of the student rounds since the
    plan was last made (the median: a passing stall of the machine is not the rounds' cost),
    would end the run past its deadline (a load has come, or the rounds grow dearer) or more
    than :data:`REPLAN_TOLERANCE` of the budget before it (the calibration ran under a load
    that has gone since), the run is re-planned to as many rounds as fit. Each re-plan comes
    after at least :data:`REPLAN_ROUNDS` student rounds and :data:`REPLAN_AFTER` of the budget
    since the rounds began or since the last re-plan; at most :data:`MAX_REPLANS` of them
    change the plan by more than the tolerance (a plan that overruns by less, corrected so its
    schedules finish, does not use one up). Otherwise a round that another like it would push
    past the deadline is the last.
    """

    deadline: float  # time.time() by which the last round must end
    budget_s: float
    eval_s: float
    checkpoint_s: float
    began: float = field(default_factory=time.time)  # when the rounds began, or the last re-plan
    replans: int = 0
    seconds: list[float] = field(default_factory=list)  # student rounds since the last plan

    @classmethod
    def of(cls, record: dict[str, Any], started: float) -> Pacer:
        """The pacer of a run sized as ``record`` says (:func:`size_run`) whose call began at
        ``started`` (its rounds begin now): its last round must end by the budget less its
        reserve, one evaluation and one checkpoint."""
        spare = record["budget_s"] * RESERVE + record["eval_s"] + record["checkpoint_s"]
        return cls(started + record["budget_s"] - spare, record["budget_s"],
                   record["eval_s"], record["checkpoint_s"])  # fmt: skip

    def observe(self, seconds: float, student: bool) -> None:
        """A round ended after ``seconds`` (of steps; warm-up rounds are not timed)."""
        if student:
            self.seconds.append(seconds)

    def late(self, round_s: float, now: float) -> bool:
        """Whether another round of ``round_s`` would end past the deadline."""
        return now + round_s > self.deadline

    def replan(self, cfg: RunConfig, done: int, now: float) -> int | None:
        """The rounds a run that has done ``done`` of ``cfg.rounds`` should now have, or
        ``None`` when it keeps its plan."""
        early = now - self.began < REPLAN_AFTER * self.budget_s
        if early or len(self.seconds) < REPLAN_ROUNDS or done >= cfg.rounds:
            return None
        round_s, left = statistics.median(self.seconds), self.deadline - now

        def cost(n: int) -> float:  # n more rounds, with the evaluations and checkpoints due
            evals = (done + n - 1) // cfg.eval_every - done // cfg.eval_every
            ckpts = (done + n - 1) // cfg.checkpoint_every - done // cfg.checkpoint_every
            return n * round_s + evals * self.eval_s + ckpts * self.checkpoint_s

        left_over = left - cost(cfg.rounds - done)
        n = max(1, int(left // round_s))
        while n > 1 and cost(n) > left:
            n -= 1
        # a plan a round too long would be cut at the deadline (its schedules unfinished);
        # one that ends early is re-planned only when it would waste a share of the budget
        if done + n == cfg.rounds or 0 <= left_over <= REPLAN_TOLERANCE * self.budget_s:
            return None
        large = abs(left_over) > REPLAN_TOLERANCE * self.budget_s
        if large and self.replans >= MAX_REPLANS:
            return None
        self.replans, self.seconds, self.began = self.replans + large, [], now
        return done + n


def _record(costs: Costs, budget_s: float, sized: RunConfig) -> dict[str, Any]:
    """What ``metrics.json`` says about the sizing."""
    return {
        "budget_s": budget_s,
        "calibration_s": round(costs.spent_s, 3),
        "round_s": round(costs.round_s, 4),
        "eval_s": round(costs.eval_s, 4),
        "checkpoint_s": round(costs.checkpoint_s, 4),
        "distill_step_s": round(costs.distill_s, 4),
        "rounds": sized.rounds,
        "kd_steps": sized.kd_steps,
    }

"""``time_budget``: parsing, the plan from measured costs, and a budgeted run that records its
sizing, re-creates from its config and resumes exactly."""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import dfkd
from dfkd.cli import main
from dfkd.config import OptimConfig, Replanned, RunConfig, parse_duration
from dfkd.engine.budget import MAX_REPLANS, RESERVE, Costs, Pacer, due, plan
from dfkd.engine.optim import lr_at
from dfkd.errors import ConfigError
from dfkd.schedules import progress


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90.0), ("10m", 600.0), ("1.5h", 5400.0), ("2 min", 120.0), ("45", 45.0), (30, 30.0)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["ten minutes", "10d", "-5m", "0", "", True])
def test_parse_duration_refuses(text):
    with pytest.raises(ConfigError, match="time budget"):
        parse_duration(text)


def test_config_refuses_a_bad_budget():
    with pytest.raises(ConfigError, match=r"90s, 10m or 1\.5h"):
        dfkd.resolve_config("dfad", "digits", overrides=["time_budget=soon"])


def _cfg(**kw) -> RunConfig:
    base = {"rounds": 100, "g_steps": 2, "kd_steps": 5, "eval_every": 10, "checkpoint_every": 25}
    return RunConfig(**{**base, **kw})


def _planned_seconds(sized: RunConfig, costs: Costs, preset: RunConfig) -> float:
    """What a plan spends, counted round by round as the loop runs it (naive reference)."""
    total = costs.spent_s
    for r in range(1, sized.rounds + 1):
        per_step = (costs.round_s - preset.kd_steps * costs.distill_s) / preset.g_steps
        kd_steps = 0 if r <= sized.warmup_rounds else sized.kd_steps  # warm-up: synthesis only
        total += sized.g_steps * per_step + kd_steps * costs.distill_s
        last = r == sized.rounds
        total += costs.eval_s * (r % sized.eval_every == 0 or last)
        total += costs.checkpoint_s * (r % sized.checkpoint_every == 0 or last)
    return total


def test_plan_fills_the_budget_and_keeps_the_number_of_evaluations():
    costs = Costs(round_s=2.0, eval_s=1.0, checkpoint_s=2.0, spent_s=10.0, distill_s=0.2)
    preset = _cfg(time_budget="10m")
    sized = plan(preset, costs, 600.0)
    # 10 evaluations and 4 checkpoints as the preset had (and the last round's)
    assert sized.eval_every == sized.rounds // 10 and sized.checkpoint_every == sized.rounds // 4
    assert sized.kd_steps == 5  # many rounds: what is left is less than a student step each
    assert sized.time_budget is None  # the sized config re-creates the run without re-sizing
    assert 0.97 * 600 <= _planned_seconds(sized, costs, preset) <= 600 * (1 - RESERVE)
    one_more = dataclasses.replace(sized, rounds=sized.rounds + 1)
    assert _planned_seconds(one_more, costs, preset) > 600 * (1 - RESERVE)


def test_plan_gives_what_is_left_of_a_few_dear_rounds_to_the_student():
    """A round of a third of the budget: two rounds fit, and the rest of the budget goes to
    student steps instead of being left unused."""
    costs = Costs(round_s=100.0, eval_s=5.0, checkpoint_s=1.0, spent_s=6.0, distill_s=0.5)
    preset = _cfg(g_steps=100, kd_steps=50)
    sized = plan(preset, costs, 300.0)
    assert sized.rounds == 2 and sized.g_steps == 100
    # 294 s available − 6 spent − 2 × (100 + 5 + 1) = 76 s → 76 student steps over 2 rounds
    assert sized.kd_steps == 50 + 76
    assert 0.97 * 300 <= _planned_seconds(sized, costs, preset) <= 300 * (1 - RESERVE)


@pytest.mark.parametrize("budget", [40.0, 120.0, 600.0])
def test_plan_keeps_the_presets_share_of_warm_up(budget):
    """A preset that warms up for 10 of its 100 rounds keeps about a tenth of a sized run as
    warm-up (never all of it), and the plan still fills its budget."""
    costs = Costs(round_s=2.0, eval_s=0.5, checkpoint_s=0.2, spent_s=5.0, distill_s=0.02)
    preset = _cfg(g_steps=5, kd_steps=50, warmup_rounds=10)
    sized = plan(preset, costs, budget)
    assert 1 <= sized.warmup_rounds < sized.rounds
    assert abs(sized.warmup_rounds - round(sized.rounds / 10)) <= 1
    assert 0.95 * budget <= _planned_seconds(sized, costs, preset) <= budget * (1 - RESERVE)


@pytest.mark.parametrize(("rounds", "every", "n"), [(10, 5, 2), (11, 5, 3), (1, 1, 1), (3, 7, 1)])
def test_due_counts_the_last_round(rounds, every, n):
    assert (
        due(rounds, every) == n == sum(r % every == 0 or r == rounds for r in range(1, rounds + 1))
    )


def test_plan_grows_and_shrinks_with_the_cost_of_a_step():
    cheap = Costs(0.07, 0.0, 0.0, 0.0)
    dear = Costs(7.0, 0.0, 0.0, 0.0)
    assert plan(_cfg(), cheap, 60).rounds > 100 > plan(_cfg(), dear, 600).rounds


def _naive_progress(done: int, total: int, replans: list[tuple[int, int]]) -> float:
    """Unit by unit: each unit runs an equal part of what is left of the share over the units
    left in the plan it runs under."""
    share, ends = 0.0, [before for _, before in replans] + [total]
    for u in range(done):
        end = next(e for (at, _), e in zip([*replans, (total, total)], ends) if u < at)
        share += (1 - share) / (end - u)
    return share


@pytest.mark.parametrize(
    ("total", "replans"), [(40, []), (40, [(10, 20)]), (15, [(10, 30)]), (50, [(5, 8), (12, 30)])]
)
def test_progress_against_a_naive_reference(total, replans):
    for done in range(total + 1):
        assert progress(done, total, replans) == pytest.approx(
            _naive_progress(done, total, replans)
        )
    assert progress(total, total, replans) == pytest.approx(1.0)


def test_student_rate_stays_continuous_through_a_re_plan_and_decays_to_its_floor():
    cfg = _cfg(optimizer=OptimConfig(lr=0.1, min_lr=0.001, schedule="cosine", warmup_steps=4))
    before = [lr_at(s, 100, cfg) for s in range(31)]
    after = [lr_at(s, 250, cfg, [(30, 100)]) for s in range(251)]
    assert after[:31] == before  # the steps run before the re-plan are the plan's
    gaps = [abs(a - b) for a, b in itertools.pairwise(after)]
    assert max(gaps[30:]) <= max(gaps[:30])  # no jump at the re-plan
    assert after[-1] == pytest.approx(0.001, abs=1e-4)


def test_config_keeps_its_re_plans_and_refuses_them_out_of_order(tmp_path):
    from dfkd.config import build_config, load_yaml

    cfg = dfkd.resolve_config("dfq", "digits", overrides=["rounds=40", "warmup_rounds=2"])
    cfg = dataclasses.replace(cfg, replanned=[Replanned(5, 20), Replanned(12, 30)])
    cfg.validate()
    (tmp_path / "c.yaml").write_text(cfg.to_yaml())
    assert build_config(load_yaml(tmp_path / "c.yaml")) == cfg
    assert cfg.round_replans() == [(5, 20), (12, 30)]
    assert cfg.step_replans() == [(3 * cfg.kd_steps, 18 * cfg.kd_steps),
                                  (10 * cfg.kd_steps, 28 * cfg.kd_steps)]  # fmt: skip
    for bad in ([Replanned(12, 30), Replanned(5, 20)], [Replanned(2, 20)], [Replanned(25, 20)],
                [Replanned(45, 50)], [Replanned(39, 45), Replanned(40, 50)]):  # fmt: skip
        with pytest.raises(ConfigError, match="'replanned' must name rounds in order"):
            dataclasses.replace(cfg, replanned=bad).validate()


def _pacer(**kw) -> Pacer:
    base = {"deadline": 100.0, "budget_s": 100.0, "eval_s": 0.0, "checkpoint_s": 0.0,
            "began": 0.0}  # fmt: skip
    return Pacer(**{**base, **kw})


def test_pacer_keeps_a_plan_that_fits_and_re_plans_one_that_does_not():
    cfg = _cfg(rounds=100, eval_every=100, checkpoint_every=100)
    p = _pacer()
    for _ in range(20):
        p.observe(1.0, student=True)
    assert p.replan(cfg, 20, 20.0) is None  # 80 rounds of 1 s in 80 s
    assert p.replan(cfg, 20, 50.0) == 20 + 50  # a slow start: 50 s left
    assert p.replans == 1 and p.seconds == [] and p.began == 50.0
    for _ in range(5):
        p.observe(0.5, student=True)
    cfg = dataclasses.replace(cfg, rounds=70)
    assert p.replan(cfg, 25, 55.0) is None  # too soon after the last re-plan
    assert p.replan(cfg, 25, 60.0) == 25 + 80  # faster now


def test_pacer_drops_a_round_that_would_be_cut_but_keeps_a_little_time_spare():
    cfg = _cfg(rounds=7, eval_every=7, checkpoint_every=7)
    p = _pacer(deadline=300.0, budget_s=300.0)
    p.observe(40.0, student=True)
    p.observe(42.0, student=True)
    assert p.replan(cfg, 2, 100.0) == 6  # 5 rounds of 41 s do not fit in 200 s: 4 do
    p = _pacer()
    p.observe(1.0, student=True)
    p.observe(1.0, student=True)
    assert p.replan(_cfg(rounds=100, eval_every=100, checkpoint_every=100), 20, 17.0) is None


def test_pacer_waits_for_student_rounds_and_stops_re_planning():
    cfg = _cfg(rounds=100, eval_every=100, checkpoint_every=100)
    p = _pacer()
    p.observe(1.0, student=False)
    p.observe(1.0, student=True)
    assert p.replan(cfg, 2, 50.0) is None  # one student round timed: too few
    p.observe(1.0, student=True)
    assert p.replan(cfg, 3, 5.0) is None  # before a tenth of the budget
    assert p.replan(cfg, 3, 50.0) == 53
    p.replans = MAX_REPLANS
    p.observe(1.0, student=True)
    p.observe(1.0, student=True)
    assert p.replan(cfg, 5, 90.0) is None


def test_pacer_does_not_re_plan_for_a_passing_stall():
    cfg = _cfg(rounds=100, eval_every=100, checkpoint_every=100)
    p = _pacer()
    for s in (1.0, 1.0, 9.0, 1.0, 1.0):  # one round stalled by another process
        p.observe(s, student=True)
    assert p.replan(cfg, 20, 20.0) is None  # the median round: 80 rounds of 1 s fit in 80 s


def test_pacer_corrects_a_small_overrun_without_using_up_a_re_plan():
    cfg = _cfg(rounds=100, eval_every=100, checkpoint_every=100)
    p = _pacer(replans=MAX_REPLANS)
    p.observe(1.0, student=True)
    p.observe(1.0, student=True)
    assert p.replan(cfg, 20, 22.0) == 20 + 78  # 2 s over (< 4 % of the budget): cut 2 rounds
    assert p.replans == MAX_REPLANS
    p.observe(1.0, student=True)
    p.observe(1.0, student=True)
    assert p.replan(dataclasses.replace(cfg, rounds=98), 40, 50.0) is None  # 20 s over: no more


def test_pacer_counts_the_evaluations_and_checkpoints_of_the_rounds_left():
    cfg = _cfg(rounds=100, eval_every=10, checkpoint_every=20)
    p = _pacer(eval_s=2.0, checkpoint_s=3.0)
    p.observe(1.0, student=True)
    p.observe(1.0, student=True)
    n = p.replan(cfg, 10, 40.0) - 10  # 60 s left

    def naive(k: int) -> float:  # k rounds of 1 s and the evaluations and checkpoints before
        between = range(11, 10 + k)  # the last (whose are reserved)
        return k + 2.0 * sum(r % 10 == 0 for r in between) + 3.0 * sum(r % 20 == 0 for r in between)

    assert naive(n) <= 60.0 < naive(n + 1)


def test_plan_refuses_a_budget_shorter_than_a_round():
    with pytest.raises(ConfigError, match=r"too short.*give at least \d+ s"):
        plan(_cfg(), Costs(7.0, 0.0, 0.0, 5.0), 8.0)


def test_budgeted_run_records_its_sizing_and_its_config_recreates_it(teacher_dir, tmp_path):
    m = dfkd.distill(teacher_dir, "lenet5_half", "dfad", "digits", out=tmp_path / "a",
                     time_budget="8s", progress=False)  # fmt: skip
    b = m["budget"]
    assert b["budget_s"] == 8.0 and m["rounds"] == (b["end_round"] or b["final_rounds"]) >= 1
    assert m["completed"]
    assert b["round_s"] > 0 and b["calibration_s"] > 0
    saved = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert saved["rounds"] == b["final_rounds"] and saved["time_budget"] is None
    again = dfkd.distill(config=tmp_path / "a" / "config.yaml", out=tmp_path / "b", progress=False)
    assert "budget" not in again and again["rounds"] == m["rounds"]
    wa, wb = (load_file(tmp_path / d / "student.safetensors") for d in "ab")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def _mis_planned(monkeypatch, factor: float) -> None:
    """Make the calibration's plan ``factor`` times too long (a calibration under a load that
    went away afterwards makes it too short)."""
    import dfkd.engine.budget as budget

    real_plan = budget.plan

    def wrong(cfg, costs, s):
        sized = real_plan(cfg, costs, s)
        rounds = max(2, round(factor * sized.rounds))
        return dataclasses.replace(sized, rounds=rounds, eval_every=max(1, rounds // 4),
                                   checkpoint_every=max(1, rounds // 4))  # fmt: skip

    monkeypatch.setattr(budget, "plan", wrong)


def _same_student(a: Path, b: Path) -> bool:
    wa, wb = (load_file(d / "student.safetensors") for d in (a, b))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_run_whose_rounds_grow_dearer_stops_at_its_deadline(teacher_dir, tmp_path, monkeypatch):
    """Without re-plans, a plan that under-estimated its rounds (here: five times too many)
    ends at the budget's deadline instead of running past it; ``config.yaml`` records where it
    ended, and re-creates the run exactly."""
    import dfkd.engine.budget as budget

    monkeypatch.setattr(budget, "MAX_REPLANS", 0)
    _mis_planned(monkeypatch, 5.0)
    t0 = time.time()
    m = dfkd.distill(teacher_dir, "lenet5_half", "dfad", "digits", out=tmp_path / "a",
                     time_budget="8s", progress=False)  # fmt: skip
    spent = time.time() - t0
    b = m["budget"]
    assert m["completed"] and b["end_round"] is not None and b["end_round"] < b["rounds"]
    assert m["rounds"] == b["end_round"] and spent < 8 * 1.25 and b["replanned"] == []
    saved = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert saved["end_round"] == b["end_round"] and saved["rounds"] == b["rounds"]
    again = dfkd.distill(config=tmp_path / "a" / "config.yaml", out=tmp_path / "b", progress=False)
    assert again["completed"] and again["rounds"] == m["rounds"]
    assert _same_student(tmp_path / "a", tmp_path / "b")


@pytest.mark.parametrize("factor", [0.3, 4.0])
def test_a_mis_planned_run_re_plans_from_its_own_rounds(teacher_dir, tmp_path, monkeypatch, factor):
    """A plan far too short (the calibration ran under a load that went away) or far too long
    is re-planned from the rounds' own times; ``config.yaml`` records the re-plans, re-creates
    the run exactly, and a resume from the re-plan's checkpoint ends with the same student."""
    _mis_planned(monkeypatch, factor)
    kw = {"time_budget": "8s", "progress": False}
    m = dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", out=tmp_path / "a", **kw)
    b = m["budget"]
    assert m["completed"] and b["replanned"]
    assert b["replanned"][0]["rounds"] == b["rounds"]  # the first re-plan left the plan
    assert m["rounds"] == (b["end_round"] or b["final_rounds"]) and b["final_rounds"] != b["rounds"]
    assert (b["final_rounds"] > b["rounds"]) == (factor < 1)
    saved = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert saved["replanned"] == b["replanned"]
    assert saved["rounds"] == b["final_rounds"] and saved["end_round"] == b["end_round"]
    again = dfkd.distill(config=tmp_path / "a" / "config.yaml", out=tmp_path / "b", progress=False)
    assert "budget" not in again and again["rounds"] == m["rounds"]
    assert _same_student(tmp_path / "a", tmp_path / "b")
    at = b["replanned"][0]["round"]
    cfg = tmp_path / "a" / "config.yaml"
    dfkd.distill(config=cfg, out=tmp_path / "c", stop_after_rounds=at + 1, progress=False)
    dfkd.distill(out=tmp_path / "c", resume=True, progress=False)
    assert _same_student(tmp_path / "a", tmp_path / "c")


def test_budgeted_run_resumes_its_plan(teacher_dir, tmp_path):
    kw = {"out": tmp_path / "a", "time_budget": "6s", "progress": False}
    first = dfkd.distill(teacher_dir, "lenet5_half", "dfad", "digits", stop_after_rounds=1, **kw)
    rounds = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())["rounds"]
    assert not first["completed"] or rounds == 1
    done = dfkd.distill(teacher_dir, "lenet5_half", "dfad", "digits", resume=True, **kw)
    assert done["completed"] and done["rounds"] == rounds  # not sized again


def test_cli_time_budget(teacher_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "run"
    rc = main(["distill", "dfad", "--teacher", str(teacher_dir), "--dataset", "digits",
               "--out", str(out), "--time-budget", "5s", "--quiet"])  # fmt: skip
    assert rc == 0 and (out / "student.safetensors").exists()
    rc = main(["distill", "dfad", "--teacher", str(teacher_dir), "--dataset", "digits",
               "--out", str(tmp_path / "bad"), "--time-budget", "soon", "--quiet"])  # fmt: skip
    assert rc == 2 and "time budget 'soon'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


# --- class coverage of what the student was distilled on ------------------------------------


def test_class_coverage_and_balance_against_a_naive_reference():
    from dfkd.evaluation.metrics import class_balance, class_coverage

    shares = [0.3, 0.3, 0.2, 0.15, 0.05, 0.0]
    fair = 1 / 6
    assert class_coverage(shares) == [c for c, p in enumerate(shares) if p < fair / 4]
    assert class_coverage(shares, floor=0.5) == [4, 5]
    naive = -sum(p * math.log(p) for p in shares if p) / math.log(6)
    assert class_balance(shares) == pytest.approx(naive)
    assert class_balance([0.1] * 10) == pytest.approx(1.0)
    assert class_balance([1.0, 0.0, 0.0]) == 0.0


def test_run_reports_class_coverage(teacher_dir, capsys):
    m = dfkd.distill(teacher_dir, "lenet5_half", "dfad", "digits", progress=False,
                     overrides=["rounds=3"])  # fmt: skip
    hist = m["synthetic_class_histogram"]
    assert sum(hist) == pytest.approx(1.0)
    assert m["uncovered_classes"] == [c for c, p in enumerate(hist) if p < 0.025]
    assert 0.0 <= m["class_balance"] <= 1.0

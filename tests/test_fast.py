"""Fast-DFKD: the decision-adversarial term, the meta generator (Reptile and first-order MAML,
the pool, exact state), the warm-up rounds, and the method end to end."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import dfkd
from dfkd.config import RunConfig
from dfkd.engine.budget import RESERVE, Costs, plan
from dfkd.errors import ConfigError
from dfkd.losses.generator import decision_adversarial_loss, one_hot_loss
from dfkd.sources import MetaGeneratorSource, SourceEnv
from dfkd.sources.meta_generator import reptile_direction

from .conftest import assert_resume_matches, digits_env


def test_decision_adversarial_against_a_naive_reference() -> None:
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(12, 5, generator=g) * 3, torch.randn(12, 5, generator=g) * 3
    s[:4] = t[:4] + 0.1  # some samples agree
    T = 2.0
    total = 0.0
    for i in range(12):
        if int(s[i].argmax()) != int(t[i].argmax()):
            continue
        p = [float(v) for v in torch.softmax(t[i] / T, 0)]
        q = [float(v) for v in torch.softmax(s[i] / T, 0)]
        total += T * T * sum(pc * (torch.log(torch.tensor(pc / qc))).item() for pc, qc in zip(p, q))
    expected = -total / 12
    assert decision_adversarial_loss(s, t, T).item() == pytest.approx(expected, rel=1e-5)
    s_disagree = torch.roll(t, 1, dims=1) * 5
    assert decision_adversarial_loss(s_disagree, t).item() == 0.0


def test_reptile_direction_is_start_minus_adapted() -> None:
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    d = reptile_direction(a, b)
    assert torch.equal(d[0], a.weight.detach() - b.weight.detach())
    assert torch.equal(d[1], a.bias.detach() - b.bias.detach())


@pytest.fixture(scope="module")
def env(digits: dfkd.Data, teacher_dir: Path) -> SourceEnv:
    return digits_env(digits, teacher_dir, 16, rounds=4, g_steps=3)


def _source(env: SourceEnv, **kw) -> MetaGeneratorSource:
    src = MetaGeneratorSource(model="light_generator", nz=8, bank=64, shift=0, replay_shift=0, **kw)
    src.setup(env)
    return src


def _round(src: MetaGeneratorSource, env: SourceEnv, steps: int = 3) -> None:
    for _ in range(steps):
        src.update(one_hot_loss(env.teacher(src.draw().x)))


def test_reptile_moves_the_start_toward_the_adapted_weights(env: SourceEnv) -> None:
    src = _source(env, meta="reptile", meta_lr=1e-3)
    theta = [p.detach().clone() for p in src.net.parameters()]
    _round(src, env)
    assert all(torch.equal(a, p) for a, p in zip(theta, src.net.parameters()))  # not yet
    phi = [p.detach().clone() for p in src.fast.parameters()]
    src.sample(4)  # ends the round's synthesis
    # Adam's first step is lr · g / (|g| + eps), g = θ − φ
    for a, f, p in zip(theta, phi, src.net.parameters()):
        g = a - f
        assert torch.allclose(p.detach(), a - 1e-3 * g / (g.abs() + 1e-8), atol=1e-7)
    assert src.fast is None and len(src.pool.bank) == 16


def test_fomaml_steps_the_start_along_the_sum_of_the_adapted_gradients(env: SourceEnv) -> None:
    src = _source(env, meta="fomaml")
    grads: list[list[torch.Tensor]] = []
    for _ in range(3):
        src.update(one_hot_loss(env.teacher(src.draw().x)))
        grads.append([q.grad.clone() for q in src.fast.parameters()])
    summed = [sum(gs) for gs in zip(*grads)]
    assert all(torch.allclose(p.grad, s) for p, s in zip(src.net.parameters(), summed))


def test_pool_keeps_the_best_batch_of_the_round(env: SourceEnv) -> None:
    src = _source(env, keep="best")
    drawn = []
    for value in (3.0, 1.0, 2.0):
        batch = src.draw()
        drawn.append(batch.x.detach().clone())
        src.update(batch.x.sum() * 0 + value)
    src.sample(4)
    assert torch.equal(src.pool.bank.data[:16], drawn[1])
    last = _source(env, keep="last")
    for value in (3.0, 1.0, 2.0):
        batch = last.draw()
        x = batch.x.detach().clone()
        last.update(batch.x.sum() * 0 + value)
    last.sample(4)
    assert torch.equal(last.pool.bank.data[:16], x)


def test_meta_generator_resumes_mid_round_exactly(env: SourceEnv) -> None:
    src = _source(env, meta="fomaml")
    _round(src, env)
    src.sample(4)
    _round(src, env, steps=2)  # stopped between two synthesis steps
    twin = _source(env, meta="fomaml")
    twin.load_state_dict(copy.deepcopy(src.state_dict()))  # as through a checkpoint file
    for s in (src, twin):
        _round(s, env, steps=1)
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(src.net.parameters(),
                                                           twin.net.parameters()))  # fmt: skip
    assert torch.equal(src.sample(8).x, twin.sample(8).x)
    assert all(torch.equal(a, b) for a, b in zip(src.net.parameters(), twin.net.parameters()))


def test_meta_generator_refuses_bad_options() -> None:
    with pytest.raises(ConfigError, match="meta must be one of"):
        MetaGeneratorSource(meta="maml")
    with pytest.raises(ConfigError, match="keep must be one of"):
        MetaGeneratorSource(keep="first")


def test_warmup_rounds_only_synthesise(teacher_dir: Path) -> None:
    m = dfkd.distill(teacher_dir, "lenet5_half", "fast", "digits", progress=False,
                     overrides=["rounds=4", "warmup_rounds=2", "eval_every=1"])  # fmt: skip
    assert m["steps"] == 2 * 20
    hist = m["history"]
    assert "synth/decision_adversarial" not in hist[0] and "synth/decision_adversarial" in hist[3]
    short = dfkd.distill(teacher_dir, "lenet5_half", "fast", "digits", progress=False,
                         overrides=["rounds=2", "warmup_rounds=5"])  # fmt: skip
    assert short["steps"] == 20  # the warm-up never takes the last round
    with pytest.raises(ConfigError, match="warmup_rounds"):
        dfkd.resolve_config("fast", "digits", overrides=["warmup_rounds=-1"])


def test_fast_resumes_bit_exactly(teacher_dir: Path, tmp_path: Path) -> None:
    overrides = ["rounds=5", "warmup_rounds=1", "eval_every=5", "checkpoint_every=5"]
    assert_resume_matches(teacher_dir, "fast", tmp_path, 2, overrides=overrides, progress=False)


def test_budget_plan_counts_warmup_rounds_without_student_steps() -> None:
    cfg = RunConfig(rounds=50, g_steps=5, kd_steps=10, warmup_rounds=10, eval_every=50,
                    checkpoint_every=50)  # fmt: skip
    costs = Costs(round_s=2.0, eval_s=0.0, checkpoint_s=0.0, spent_s=0.0, distill_s=0.1)
    sized = plan(cfg, costs, 100.0)
    left = 100.0 * (1 - RESERVE)

    def cost(rounds: int) -> float:  # warm-up rounds cost 1 s (no student steps), others 2 s
        warm = max(1, min(rounds - 1, round(10 * rounds / 50)))
        return 2.0 * rounds - 1.0 * warm

    assert sized.rounds == max(r for r in range(2, 100) if cost(r) <= left)
    assert sized.warmup_rounds == round(10 * sized.rounds / 50)
    with pytest.raises(ConfigError, match="after a warm-up round"):
        plan(cfg, costs, 2.0)


@pytest.mark.parametrize("method", ["fast", "nayer", "cmi"])
def test_cifar_defaults_run_a_round_on_cifar_shaped_images(method: str, tmp_path: Path) -> None:
    """The papers' CIFAR configurations (generators, widths, views, pools) on 32×32×3 images in
    the real CIFAR-10 file format; only the step counts and batch sizes are cut."""
    from .test_data import write_cifar10

    write_cifar10(tmp_path / "c10", n=8)
    data = dfkd.load_dataset("cifar10", tmp_path / "c10")
    teacher = dfkd.train_teacher(data, "lenet5", epochs=1, out=tmp_path / "t", batch_size=8,
                                 progress=False)  # fmt: skip
    assert teacher["test_accuracy"] >= 0
    cfg = dfkd.resolve_config(method, "cifar10")
    small = ["rounds=2", "warmup_rounds=1", "g_steps=2", "kd_steps=2", "batch_size=8",
             "source.args.synth_batch_size=20", "eval_every=1", "checkpoint_every=1"]  # fmt: skip
    m = dfkd.distill(tmp_path / "t", "lenet5_half", method, data, overrides=small, progress=False)
    assert m["completed"] and m["steps"] == 2 and cfg.source.args["model"] == "dafl_generator"


def test_stat_memory_averages_each_rounds_last_statistics_over_rounds() -> None:
    """The memory takes the first round's last batch statistics as they are, then averages
    each round's last ones in with ``momentum``; a round's earlier steps do not count."""
    from dfkd.engine.objective import StatMemory, stat_memory
    from dfkd.losses.terms import StepContext

    def ctx(value: float) -> StepContext:
        s = (torch.full((2,), value), torch.full((2,), 2 * value))
        taps = {"bn": {"b": s}, "bn_refs": {"b": (torch.zeros(2), torch.ones(2))}}
        return StepContext("synth", torch.zeros(1, 1), torch.zeros(1, 3), taps=taps)

    memory = StatMemory(0.9)
    memory.commit()  # nothing observed: nothing to keep
    assert memory.context() == {"stat_memory": None}
    memory.observe(ctx(5.0))
    memory.observe(ctx(1.0))
    memory.commit()
    assert torch.equal(memory.stats[0][0], torch.full((2,), 1.0))
    memory.observe(ctx(11.0))
    memory.commit()
    assert torch.allclose(memory.stats[0][0], torch.full((2,), 0.9 * 1 + 0.1 * 11))
    assert torch.allclose(memory.stats[0][1], torch.full((2,), 0.9 * 2 + 0.1 * 22))
    twin = StatMemory(0.9)
    twin.load_state_dict(memory.state_dict())
    assert torch.equal(twin.stats[0][1], memory.stats[0][1])
    terms = dfkd.engine.objective.bind_terms({"stat_match": {"momentum": 0.9}}, "synth")
    assert stat_memory(terms).momentum == 0.9
    assert stat_memory(dfkd.engine.objective.bind_terms({"stat_match": {}}, "synth")) is None
    with pytest.raises(ConfigError, match="momentum must be in"):
        dfkd.engine.parts.build_parts(
            dfkd.resolve_config("fast", "digits", overrides=["synth_terms.stat_match.momentum=1"])
        )


def test_statistics_momentum_resumes_bit_exactly(teacher_dir: Path, tmp_path: Path) -> None:
    overrides = ["rounds=4", "warmup_rounds=1", "eval_every=4", "checkpoint_every=4",
                 "synth_terms.stat_match.momentum=0.9"]  # fmt: skip
    full, _ = assert_resume_matches(teacher_dir, "fast", tmp_path, 2, overrides=overrides,
                                    progress=False)  # fmt: skip
    plain = dfkd.distill(teacher_dir, "lenet5_half", "fast", "digits", progress=False,
                         overrides=[o for o in overrides if "momentum" not in o])  # fmt: skip
    ws, wp = full["student"].state_dict(), plain["student"].state_dict()
    assert not all(torch.equal(ws[k], wp[k]) for k in ws)  # the memory changes the run

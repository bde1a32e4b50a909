"""No synthesis or student step reads a tensor back to the host (on a GPU each such read waits
for the device): every method's steps are run with the reading methods of ``torch.Tensor``
counted. What the engine reads, it reads once per round (logs, evaluation, checkpoints)."""

from __future__ import annotations

import traceback
from collections import Counter
from pathlib import Path

import pytest
import torch

import dfkd
from dfkd.engine.loop import Loop

READS = ("item", "__float__", "__int__", "__bool__", "tolist", "cpu", "numpy")
PACKAGE = Path(dfkd.__file__).parent
#: reads of tensors that never were on a device: random draws from a host generator
HOST_RNG = {"sources/pixels.py"}
#: not in DATA_FREE: TA-DFKD fits its per-batch 2-component GMM in scikit-learn, on the host,
#: by design; ``spectral`` and ``substitute`` need a statistics file / a substitute dataset


def _site() -> str | None:
    """The dfkd line that made the read; ``None`` inside ``torch.optim``, whose step counters
    stay on the host for parameters on any device (no sync)."""
    stack = traceback.extract_stack()
    if any("torch/optim/" in f.filename for f in stack):
        return None
    frames = [f for f in stack if PACKAGE in Path(f.filename).parents]
    return f"{Path(frames[-1].filename).relative_to(PACKAGE)}:{frames[-1].lineno}"


@pytest.fixture
def step_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts, by dfkd source line, the tensor reads made inside ``Loop`` steps."""
    reads: Counter[str] = Counter()
    depth = [0]

    def counting(name: str):
        original = getattr(torch.Tensor, name)

        def read(self, *args, **kwargs):
            site = _site() if depth[0] else None
            if site is not None:
                reads[site] += 1
            return original(self, *args, **kwargs)

        return read

    def in_step(step):
        def wrapped(self):
            depth[0] += 1
            try:
                return step(self)
            finally:
                depth[0] -= 1

        return wrapped

    for name in READS:
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    for step in ("synthesis_step", "distill_step"):
        monkeypatch.setattr(Loop, step, in_step(getattr(Loop, step)))
    return reads


DATA_FREE = ["dfq", "dafl", "dfad", "deepinversion", "bn_stats", "fast", "nayer", "cmi"]


@pytest.mark.parametrize("method", DATA_FREE)
def test_steps_read_nothing_back(method: str, teacher_dir: Path, step_reads: Counter) -> None:
    over = ["rounds=3", "g_steps=2", "kd_steps=2", "eval_every=3", "checkpoint_every=3"]
    m = dfkd.distill(teacher_dir, "lenet5_half", method, "digits", overrides=over,
                     progress=False)  # fmt: skip
    assert m["completed"]
    device_reads = {k: v for k, v in step_reads.items() if k.split(":")[0] not in HOST_RNG}
    assert not device_reads, f"{method} reads tensors back inside a step: {device_reads}"


def test_the_counter_sees_a_read_inside_a_step(
    teacher_dir: Path, step_reads: Counter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check can fail: TA-DFKD's host GMM is seen, as is a planted ``float(loss)``."""
    over = ["rounds=2", "g_steps=2", "kd_steps=2", "eval_every=2", "checkpoint_every=2"]
    dfkd.distill(teacher_dir, "lenet5_half", "ta_dfkd", "digits", overrides=over, progress=False)
    assert any(k.startswith("plugins/gmm.py") for k in step_reads)
    step_reads.clear()
    from dfkd.sources.generator import GeneratorSource

    update = GeneratorSource.update

    def reading_update(self, loss: torch.Tensor) -> None:
        self.last_loss = float(loss.detach())  # the kind of read the check is for
        update(self, loss)

    monkeypatch.setattr(GeneratorSource, "update", reading_update)
    dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", overrides=over, progress=False)
    assert sum(step_reads.values()) == 2 * 2  # once per synthesis step

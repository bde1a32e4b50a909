"""Sources: memory bank, generator, pixel inversion — mechanics, clipping, exact state."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
import torch
from lightning_fabric import Fabric

import dfkd
from dfkd.errors import ConfigError
from dfkd.losses.generator import one_hot_loss
from dfkd.registry import options_of
from dfkd.sources import GeneratorSource, MemoryBank, PixelInversion, SourceEnv
from dfkd.sources.bank import pool_metrics
from dfkd.sources.pool import PoolOptions


@pytest.fixture(scope="module")
def env(digits: dfkd.Data, teacher_dir: Path) -> SourceEnv:
    teacher, _ = dfkd.load_model(teacher_dir)
    teacher.eval()
    student = dfkd.create_model("lenet5_half", num_classes=10, in_channels=1, image_size=8)
    return SourceEnv(Fabric(accelerator="cpu", devices=1), digits, teacher, student, 16, 0)


def test_memory_bank_ring_and_state() -> None:
    bank = MemoryBank(5)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(RuntimeError, match="empty"):
        bank.sample(2, gen)
    bank.add(torch.arange(3.0).view(3, 1))
    bank.add(torch.arange(3.0, 7.0).view(4, 1))  # 7 added into 5 slots: 0 and 1 overwritten
    assert len(bank) == 5 and sorted(bank.data.view(-1).tolist()) == [2, 3, 4, 5, 6]
    other = MemoryBank(5)
    other.load_state_dict(bank.state_dict())
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(bank.sample(8, g1), other.sample(8, g2))


def test_memory_bank_ages() -> None:
    bank = MemoryBank(6)
    for k in range(4):  # batches 0..3 of two samples; 0 is overwritten by 3
        bank.add(torch.full((2, 1), float(k)))
    assert sorted(bank.ages().tolist()) == [0, 0, 1, 1, 2, 2]
    assert pool_metrics(bank) == {"pool_size": 6.0, "pool_age": 1.0}
    drawn = bank.sample(200, torch.Generator().manual_seed(0)).view(-1)
    assert set(drawn.tolist()) == {1.0, 2.0, 3.0}  # every kept batch is replayed
    other = MemoryBank(6)
    other.load_state_dict(bank.state_dict())
    assert torch.equal(other.ages(), bank.ages())


def _same_future(a, b, steps: int = 2) -> None:
    for _ in range(steps):
        assert torch.equal(a.sample(4).x, b.sample(4).x)


def test_generator_source(env: SourceEnv) -> None:
    src = GeneratorSource(model="light_generator", nz=8, bank=32)
    src.setup(env)
    batch = src.draw()
    assert batch.x.shape == (16, 1, 8, 8) and batch.x.requires_grad
    before = [p.detach().clone() for p in src.net.parameters()]
    src.update(one_hot_loss(env.teacher(batch.x)))
    assert any(not torch.equal(a, b) for a, b in zip(before, src.net.parameters()))
    assert len(src.pool.bank) == 16  # the synthesis batch was banked
    assert src.sample(4).x.shape == (4, 1, 8, 8) and not src.sample(4).x.requires_grad
    twin = GeneratorSource(model="light_generator", nz=8, bank=32)
    twin.setup(env)
    twin.load_state_dict(src.state_dict())
    _same_future(src, twin)


def test_generator_replay_augmentation_needs_a_bank() -> None:
    with pytest.raises(ConfigError, match="set bank"):
        GeneratorSource(replay_flip=True)


def test_pixel_inversion_optimises_clips_and_banks(env: SourceEnv, digits: dfkd.Data) -> None:
    src = PixelInversion(lr=0.25, jitter=1, flip=True, bank=64, init_std=2.0)
    src.setup(env)
    target = torch.arange(16) % 10
    losses = []
    for _ in range(30):
        batch = src.draw()
        loss = torch.nn.functional.cross_entropy(env.teacher(batch.x), target)
        src.update(loss)
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    low, high = digits.bounds
    assert (src.pixels >= low - 1e-6).all() and (src.pixels <= high + 1e-6).all()
    twin = PixelInversion(lr=0.25, jitter=1, flip=True, bank=64, init_std=2.0)
    twin.setup(env)
    twin.load_state_dict(src.state_dict())  # mid-batch: pixels and optimiser state carried
    assert torch.equal(src.draw().x, twin.draw().x)
    out = src.sample(8)
    assert out.x.shape == (8, 1, 8, 8) and len(src.pool.bank) == 16 and src.pixels is None
    log = src.round_end(0)
    assert log["pool_size"] == 16.0 and log["pool_admitted"] == 1.0  # no targets: all admitted
    assert int(src.pool_histogram().sum()) == 16  # each banked image's class, by the teacher
    assert 0 < log["pool_coverage"] <= 1 and "synth_hit_rate" not in log


@pytest.mark.parametrize("cls", [PixelInversion, GeneratorSource])
def test_replay_augmentation(cls, env: SourceEnv, digits: dfkd.Data) -> None:
    """Replayed images are shifted (black fill) and flipped copies of banked ones; the bank and
    the default (no augmentation) are unchanged."""
    with pytest.raises(ConfigError, match="replay_shift"):
        cls(replay_shift=-1, bank=64)
    plain, aug = cls(bank=64), cls(bank=64, replay_shift=2, replay_flip=True)
    for src in (plain, aug):
        src.setup(env)
        src.pool.bank.add(torch.randn(16, 1, 8, 8))
    banked = plain.pool.bank.data[: plain.pool.bank.size]
    x = plain.sample(32).x  # no augmentation: every sample is a banked image
    assert all(any(torch.equal(xi, b) for b in banked) for xi in x)
    aug.pool.bank.load_state_dict(plain.pool.bank.state_dict())
    y = aug.sample(256).x
    low = digits.bounds[0].item()
    variants = []
    for b in banked:  # every shift of ≤ 2 pixels in each direction, and its mirror
        padded = torch.nn.functional.pad(b - low, (2, 2, 2, 2)) + low
        for dy in range(5):
            for dx in range(5):
                v = padded[:, dy : dy + 8, dx : dx + 8]
                variants += [v, v.flip(2)]
    assert all(any(torch.allclose(yi, v) for v in variants) for yi in y)
    assert sum(any(torch.equal(yi, b) for b in banked) for yi in y) < len(y) // 2
    assert torch.equal(aug.pool.bank.data[: aug.pool.bank.size], banked)


def test_replay_procedural_mixes_fresh_program_images_into_replays(
    env: SourceEnv, digits: dfkd.Data
) -> None:
    """``replay_procedural``: that share of each replayed batch is fresh program images (in
    the data's normalisation, none of them pooled), the rest pooled images; the bank is left
    as it was and a resumed source replays the same batch."""
    from dfkd.data.procedural import program_images
    from dfkd.evaluation.domains import from_pixels

    src = PixelInversion(bank=64, replay_shift=0, replay_procedural=0.25)
    src.setup(env)
    src.pool.bank.add(torch.full((16, 1, 8, 8), 7.0))  # outside the pixel range: told apart
    state = src.state_dict()
    x = src.sample(16).x
    pooled = (x == 7.0).flatten(1).all(1)
    assert pooled.sum() == 12 and pooled[:12].all()  # a quarter fresh, after the pooled ones
    low, high = digits.bounds
    fresh = x[~pooled]
    assert (fresh >= low - 1e-6).all() and (fresh <= high + 1e-6).all()
    gen = torch.Generator()
    gen.set_state(state["gen"])
    src.pool.bank.draw(12, gen)  # the pooled draw comes first from the same stream
    expect = from_pixels(program_images(4, digits.input_shape, gen), digits.mean, digits.std)
    assert torch.allclose(fresh, expect)
    assert len(src.pool.bank) == 16 and (src.pool.bank.data[:16] == 7.0).all()
    twin = PixelInversion(bank=64, replay_shift=0, replay_procedural=0.25)
    twin.setup(env)
    twin.load_state_dict(state)
    assert torch.equal(twin.sample(16).x, x)
    assert PixelInversion(bank=64, replay_procedural=0.5).pool_options.replay_procedural == 0.5


def test_replay_mix_mixes_pooled_images_in_pairs(env: SourceEnv) -> None:
    """``replay_mix``: each replayed image is a blend of two pooled ones; the bank keeps the
    images as they were, and the teacher labels what is replayed."""
    src = PixelInversion(bank=64, replay_shift=0, replay_mix="mixup")
    src.setup(env)
    src.pool.bank.add(torch.arange(16.0).view(16, 1, 1, 1).expand(16, 1, 8, 8).contiguous())
    batch = src.sample(16)
    assert batch.teacher_logits is None
    flat = batch.x.flatten(1)
    assert (flat.amin(1) == flat.amax(1)).all()  # each a blend of two constant images
    assert not torch.equal(flat[:, 0].sort().values, torch.arange(16.0))  # not just a draw
    assert torch.equal(src.pool.bank.data[:16, 0, 0, 0], torch.arange(16.0))


@pytest.mark.parametrize("options,message", [
    ({"bank": 64, "replay_mix": "cutmix"}, "replay_mix must be one of"),
    ({"bank": 64, "replay_mix": "mixup", "replay_targets": "cached"}, "needs replay_targets"),
    ({"bank": 0, "replay_mix": "mixup"}, "replay_\\* and admit apply"),
])  # fmt: skip
def test_replay_mix_is_checked(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        dfkd.sources.build_source("generator", options)


@pytest.mark.parametrize("share", [-0.1, 1.0])
def test_replay_procedural_is_a_share_below_one(share: float) -> None:
    with pytest.raises(ConfigError, match="replay_procedural must be in \\[0, 1\\)"):
        dfkd.sources.build_source("pixels", {"replay_procedural": share})
    with pytest.raises(ConfigError, match="replay_\\* and admit apply"):
        dfkd.sources.build_source("generator", {"replay_procedural": 0.5})


DI = [  # a DeepInversion-shaped composition, sized for a test
    "source.name=pixels",
    "source.args={lr: 0.1, bank: 256}",
    "g_steps=5",
    "synth_terms={bn_stats: {weight: 1.0, first_multiplier: 10}, one_hot: {weight: 1.0},"
    " tv: {weight: 1e-3}}",
    "distill_terms.ce.weight=0",
    "rounds=4",
    "kd_steps=4",
    "batch_size=32",
    "eval_every=2",
    "checkpoint_every=2",
]


def test_pixel_source_in_the_loop_and_resume(tmp_path: Path, teacher_dir: Path) -> None:
    kd = dict(student="lenet5_half", method="kd", dataset="digits", progress=False)
    full = dfkd.distill(teacher_dir, out=tmp_path / "a", overrides=DI, **kd)
    assert {"synth/bn_stats", "synth/one_hot", "synth/tv"} <= set(full["loss_terms"])
    hist = full["history"]
    assert "pool_size" in hist[-1] and hist[-1]["pool_size"] == 128.0
    dfkd.distill(teacher_dir, out=tmp_path / "b", overrides=DI, stop_after_rounds=1, **kd)
    done = dfkd.distill(teacher_dir, out=tmp_path / "b", overrides=DI, resume=True, **kd)
    assert done["student_accuracy"] == full["student_accuracy"]
    wa = dfkd.io.files.load_tensors(tmp_path / "a" / "student.safetensors")[0]
    wb = dfkd.io.files.load_tensors(tmp_path / "b" / "student.safetensors")[0]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_generator_source_with_teacher_features(teacher_dir: Path) -> None:
    dafl_like = [
        "source.name=generator",
        "source.args={nz: 16}",
        "g_steps=2",
        "synth_terms={one_hot: {}, activation: {weight: 0.1}, info_entropy: {weight: 5}}",
        "distill_terms={kd_kl: {weight: 1.0, T: 1.0}}",
        "distill_terms.ce.weight=0",
        "rounds=2",
        "kd_steps=3",
        "batch_size=32",
    ]
    m = dfkd.distill(
        teacher_dir, "lenet5_half", "kd", "digits", overrides=dafl_like, progress=False
    )
    assert "synth/activation" in m["loss_terms"] and m["loss_terms"]["synth/activation"] < 0


def test_bn_term_on_a_teacher_without_bn_is_refused_up_front(
    tmp_path: Path, digits: dfkd.Data
) -> None:
    nobn = dfkd.create_model("lenet5_nobn", num_classes=10, in_channels=1, image_size=8)
    with pytest.raises(ConfigError, match="dfkd stats collect"):
        dfkd.distill(nobn, "lenet5_half", "kd", digits, out=tmp_path / "x", overrides=DI)
    assert not (tmp_path / "x").exists()


def test_statistics_file_terms_for_a_teacher_without_bn(tmp_path: Path, digits: dfkd.Data) -> None:
    card = dfkd.train_teacher(digits, "lenet5_nobn", epochs=15, out=tmp_path / "t", progress=False)
    assert card["test_accuracy"] > 0.5
    stats = tmp_path / "stats.safetensors"
    dfkd.collect_teacher_stats(tmp_path / "t", digits, ["features.0", "features.3"], stats)
    sfm = [
        "source.name=pixels",
        "source.args={lr: 0.1, bank: 256}",
        "g_steps=4",
        "synth_terms={feature_stats: {first_multiplier: 5}, spectral_stats: {weight: 0.5},"
        " one_hot: {}}",
        "distill_terms.ce.weight=0",
        "rounds=3",
        "kd_steps=3",
        "batch_size=32",
        "eval_every=3",
    ]
    with pytest.raises(ConfigError, match=r"--stats FILE.*dfkd stats collect"):
        dfkd.distill(tmp_path / "t", "lenet5_half", "kd", digits, overrides=sfm, progress=False)
    m = dfkd.distill(
        tmp_path / "t", "lenet5_half", "kd", digits, overrides=sfm, stats=stats, progress=False
    )
    assert {"synth/feature_stats", "synth/spectral_stats"} <= set(m["loss_terms"])
    other = tmp_path / "other.safetensors"
    bn_teacher = dfkd.create_model("lenet5", num_classes=10, in_channels=1, image_size=8)
    # features.9 (a BatchNorm of the BN teacher) does not exist in lenet5_nobn
    dfkd.collect_teacher_stats(bn_teacher, digits, ["features.9"], other)
    with pytest.raises(dfkd.DfkdError, match="does not have"):
        dfkd.distill(tmp_path / "t", "lenet5_half", "kd", digits, overrides=sfm, stats=other)


def test_generator_reuse_drawn_batch_once(env: SourceEnv) -> None:
    src = GeneratorSource(nz=8, reuse_drawn=True)
    src.setup(env)
    drawn = src.draw()
    src.update(one_hot_loss(env.teacher(drawn.x)))
    twin = GeneratorSource(nz=8, reuse_drawn=True)
    twin.setup(env)
    twin.load_state_dict(src.state_dict())  # an unused drawn batch survives a checkpoint
    first = src.sample(16)
    assert torch.equal(first.x, drawn.x.detach()) and torch.equal(twin.sample(16).x, first.x)
    assert not torch.equal(src.sample(16).x, first.x)  # afterwards: fresh draws


POOL_SOURCES = ["generator", "pixels", "meta_generator", "noisy_generator", "cmi_generator"]


@pytest.mark.parametrize("name", POOL_SOURCES)
def test_pool_options_are_declared_once_and_taken_by_every_pool_source(name: str) -> None:
    cls = dfkd.sources.SOURCES.get(name)
    fields = [f.name for f in dataclasses.fields(PoolOptions)]
    assert set(fields) <= set(inspect.signature(cls.__init__).parameters)
    assert not any(f"{f}:" in inspect.getsource(cls) for f in fields)  # not re-declared
    documented = {n for n, _, doc in options_of(cls) if doc}
    assert set(fields) <= documented
    built = dfkd.sources.build_source(name, {"bank": 16, "replay_flip": True, "admit": "hit"})
    assert built.pool_options.bank == 16 and built.pool_options.replay_flip
    assert built.pool_options.replay_targets == PoolOptions().replay_targets  # shared default


def test_pool_options_refuse_what_a_pool_cannot_do() -> None:
    build = dfkd.sources.build_source
    with pytest.raises(ConfigError, match="source 'generator': replay_\\* and admit apply"):
        build("generator", {"replay_flip": True})  # no bank: nothing is replayed
    with pytest.raises(ConfigError, match="source 'meta_generator': bank must be ≥ 1"):
        build("meta_generator", {"bank": 0})
    with pytest.raises(ConfigError, match="source 'cmi_generator': replay_targets must be one"):
        build("cmi_generator", {"replay_targets": "stale"})
    with pytest.raises(ConfigError, match="source 'pixels': admit must be one of"):
        build("pixels", {"admit": "some"})
    with pytest.raises(ConfigError, match="takes no option 'banks'"):
        build("noisy_generator", {"banks": 8})
    assert build("generator", {}).pool_options.bank == 0  # its own default: no pool

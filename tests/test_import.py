"""Teachers trained elsewhere: `dfkd teacher import` records a network's input normalisation,
and distillation gives it inputs in that normalisation while sources keep the dataset's scale."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import dfkd
from dfkd.cli import main as cli_main
from dfkd.io.cards import card_normalization, load_model

THIRD_PARTY = '''
from torch import nn


def small_cnn(num_classes=10, in_channels=1):
    """A plain-PyTorch network, written without dfkd."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, num_classes),
    )
'''
#: how each network was trained: normalisation spec → (mean, std) of its inputs
NORMS = {"none": (0.0, 1.0), "0.5,0.5": (0.5, 0.5), "dataset": None}


@pytest.fixture(scope="session")
def third_party(tmp_path_factory: pytest.TempPathFactory, digits: dfkd.Data) -> Iterator[Path]:
    """Three copies of one architecture trained in plain PyTorch on digits, each on inputs in
    another normalisation; their weights as safetensors."""
    root = tmp_path_factory.mktemp("third_party")
    (root / "thirdparty_net.py").write_text(THIRD_PARTY)
    sys.path.insert(0, str(root))
    import thirdparty_net

    pixels = digits.denormalize(digits.x_train)
    for spec, ms in NORMS.items():
        m, s = ms if ms is not None else (digits.mean[0], digits.std[0])
        torch.manual_seed(0)
        net = thirdparty_net.small_cnn()
        opt = torch.optim.Adam(net.parameters(), 1e-2)
        x, gen = (pixels - m) / s, torch.Generator().manual_seed(0)
        for _ in range(8):
            for idx in torch.randperm(len(x), generator=gen).split(64):
                loss = F.cross_entropy(net(x[idx]), digits.y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        save_file(net.state_dict(), root / f"{spec}.safetensors")
    yield root
    sys.path.remove(str(root))
    sys.modules.pop("thirdparty_net", None)


def test_import_records_the_normalisation_and_reports_accuracy(
    third_party: Path, tmp_path: Path, digits: dfkd.Data
) -> None:
    for spec, ms in NORMS.items():
        card = dfkd.import_teacher("thirdparty_net:small_cnn", third_party / f"{spec}.safetensors",
                                   "digits", tmp_path / spec, normalization=spec)  # fmt: skip
        assert card["test_accuracy"] > 0.9, (spec, card["test_accuracy"])
        _, saved = load_model(tmp_path / spec)
        mean, std = card_normalization(saved)
        assert (mean[0], std[0]) == (ms if ms is not None else (digits.mean[0], digits.std[0]))
        assert dfkd.evaluate(tmp_path / spec, "digits")["accuracy"] == card["test_accuracy"]
    # the same network given the wrong normalisation is visibly worse: the record matters
    wrong = dfkd.import_teacher("thirdparty_net:small_cnn", third_party / "dataset.safetensors",
                                "digits", normalization="none")  # fmt: skip
    assert wrong["test_accuracy"] < 0.7


def test_each_normalisation_distils_to_the_same_accuracy(third_party: Path, tmp_path: Path) -> None:
    accs = {}
    for spec in NORMS:
        dfkd.import_teacher("thirdparty_net:small_cnn", third_party / f"{spec}.safetensors",
                            "digits", tmp_path / f"t-{spec}", normalization=spec)  # fmt: skip
        m = dfkd.distill(tmp_path / f"t-{spec}", "lenet5_half", "dfq", "digits",
                         out=tmp_path / f"s-{spec}", progress=False)  # fmt: skip
        accs[spec] = m["student_accuracy"]
        _, student = load_model(tmp_path / f"s-{spec}")
        _, teacher = load_model(tmp_path / f"t-{spec}")
        assert card_normalization(student) == card_normalization(teacher)  # a drop-in student
        assert dfkd.evaluate(tmp_path / f"s-{spec}", "digits")["accuracy"] == accs[spec]
    assert min(accs.values()) > 0.75 and max(accs.values()) - min(accs.values()) < 0.08, accs


def test_import_cli_and_its_errors(third_party: Path, tmp_path: Path, capsys) -> None:
    args = ["teacher", "import", "--model", "thirdparty_net:small_cnn", "--weights",
            str(third_party / "none.safetensors"), "--dataset", "digits"]  # fmt: skip
    assert cli_main([*args, "--normalization", "none", "--out", str(tmp_path / "t")]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert cli_main([*args, "--normalization", "0.5", "--out", str(tmp_path / "u")]) == 2
    err = capsys.readouterr().err
    assert "--normalization must be dataset, none, MEAN,STD" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "u").exists()
    (tmp_path / "w.pt").write_bytes(b"\x80\x04" + b"\x00" * 64)  # a pickle
    assert cli_main([*args[:5], str(tmp_path / "w.pt"), *args[6:], "--out",
                     str(tmp_path / "v")]) == 2  # fmt: skip
    assert "refuses to load" in capsys.readouterr().err and not (tmp_path / "v").exists()


def test_zoo_networks_import_as_teachers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every network of the benchmark's teacher zoo (plain PyTorch) imports as a card."""
    from dfkd.data.base import make_data

    bench = Path(__file__).parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(bench))
    import zoo_nets

    g = torch.Generator().manual_seed(0)
    fake = make_data("fake28", torch.rand(16, 1, 28, 28, generator=g), torch.arange(16) % 10,
                     torch.rand(8, 1, 28, 28, generator=g), torch.arange(8) % 10,
                     num_classes=10)  # fmt: skip
    names = [n for n in vars(zoo_nets) if not n.startswith("_") and callable(vars(zoo_nets)[n])]
    factories = [n for n in names if isinstance(vars(zoo_nets)[n](), torch.nn.Module)]
    assert {"cnn_nobn", "vgg_bn", "resnet_small", "mlp"} <= set(factories)
    for name in factories:
        weights = tmp_path / f"{name}.safetensors"
        save_file(vars(zoo_nets)[name]().state_dict(), weights)
        card = dfkd.import_teacher(f"zoo_nets:{name}", weights, fake, tmp_path / name,
                                   normalization="none")  # fmt: skip
        assert card["imported"]["model"] == f"zoo_nets:{name}"
        model, saved = load_model(tmp_path / name)
        assert card_normalization(saved) == ((0.0,), (1.0,))
        assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)

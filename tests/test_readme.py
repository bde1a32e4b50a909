"""The README's code examples run as written (on digits, shortened)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import dfkd
from dfkd.losses import TERMS
from dfkd.plugins import PLUGINS

README = Path(__file__).parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_first_lines_are_the_two_setup_commands() -> None:
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1).strip().splitlines()
    assert [line.split("#")[0].strip() for line in first_block] == ["make demo", "make test"]
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert "make test" in ci


def test_readme_extension_example_runs(teacher_dir: Path) -> None:
    (block,) = [b for b in _python_blocks() if "register_plugin" in b]
    code = block.replace('"runs/t-mnist"', repr(str(teacher_dir))).replace('"mnist10k"', '"digits"')
    code = code.replace("overrides=[", 'overrides=["rounds=2", "kd_steps=3", ')
    code = code.replace("plugins=[", "progress=False, plugins=[")
    scope: dict = {}
    try:
        exec(compile(code, "README.md", "exec"), scope)
        metrics = scope["metrics"]
        assert metrics["completed"] and metrics["steps"] == 6
        assert metrics["loss_terms"]["logit_norm"] > 0  # the new term is in the objective
        with pytest.raises(dfkd.ConfigError, match="option 'threshold' must be float"):
            dfkd.distill(teacher_dir, "lenet5_half", "kd", "digits",
                         plugins=["keep_confident:threshold=abc"])  # fmt: skip
    finally:
        TERMS.unregister("logit_norm")
        PLUGINS.unregister("keep_confident")


@pytest.mark.parametrize("pattern", [r"dfkd\.(\w+)\("])
def test_readme_python_api_names_exist(pattern: str) -> None:
    for block in _python_blocks():
        for name in re.findall(pattern, block):
            assert hasattr(dfkd, name), name


def test_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (block,) = [b for b in _python_blocks() if "collect_teacher_stats" in b]
    code = block.replace('"mnist10k"', '"digits"').replace("epochs=20", "epochs=3")
    code = code.replace("image_size=28", "image_size=8").replace("dfkd.distill(", "short(")

    def short(*args, **kwargs):
        return dfkd.distill(*args, overrides=["rounds=2", "kd_steps=3"], progress=False, **kwargs)

    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"short": short})
    assert (tmp_path / "runs" / "dfq-mnist" / "metrics.json").is_file()
    assert (tmp_path / "runs" / "t-nobn" / "stats.safetensors").is_file()


THIRD_PARTY = """
from torch import nn


def build_cnn(num_classes=10, in_channels=1):
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 8 * 8, num_classes))
"""


def _third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``mynets.mnist:build_cnn`` and ``cnn.safetensors`` as a user has them (an 8×8 network)."""
    import torch
    from safetensors.torch import save_file

    (tmp_path / "mynets").mkdir()
    (tmp_path / "mynets" / "__init__.py").write_text("")
    (tmp_path / "mynets" / "mnist.py").write_text(THIRD_PARTY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 8, 10))  # fmt: skip
    save_file(net.state_dict(), str(tmp_path / "cnn.safetensors"))


def test_readme_first_example_runs_your_own_teacher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first screen's Python example (import → distill without a method → export) and its
    command-line twin run as written, on digits and a short run."""
    from dfkd.cli import main

    _third_party(tmp_path, monkeypatch)
    text = README.read_text()
    first = text.split("\n")[:60]
    assert any(line.startswith("| your teacher | run | measured |") for line in first)
    block = _python_blocks()[0]
    assert "import_teacher" in block and text.index(block) < len("\n".join(first))
    short = 'overrides=["rounds=2", "kd_steps=2"], progress=False'
    code = block.replace('"mnist10k"', '"digits"').replace('time_budget="10m"', short)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["m"]["method_choice"].startswith("deepinversion: no BatchNorm")
    assert (tmp_path / "runs" / "s-mine.onnx").is_file()
    shell = re.findall(r"```bash\n(.*?)```", text, flags=re.S)[1].replace("\\\n", " ")
    quick = ["--set", "rounds=2", "--set", "kd_steps=2", "--quiet"]
    for line in shell.splitlines():
        argv = line.split("#")[0].replace("mnist10k", "digits").replace("-mine", "-cli").split()
        if argv[1] == "audit":
            argv += ["--probes", "8", "--steps", "2", "--trigger-steps", "2"]
        if "--time-budget" in argv:
            argv = argv[: argv.index("--time-budget")] + quick
        assert main(argv[1:]) == 0, argv


def test_benchmarks_readme_quotes_committed_results() -> None:
    """Every table row of benchmarks/README.md is a row of a committed results page, and every
    command and log it names exists."""
    bench = Path(__file__).parents[1] / "benchmarks"
    pages = "\n".join(p.read_text() for p in (bench / "results").glob("*.md")).splitlines()
    rows = [line for line in (bench / "README.md").read_text().splitlines() if line.startswith("|")]
    assert len(rows) > 20 and all(r in pages for r in rows), [r for r in rows if r not in pages]
    for doc in (bench / "README.md", bench / "explore" / "README.md"):
        text = doc.read_text()
        for script in re.findall(r"python (benchmarks/[\w/]+\.py)", text):
            assert (bench.parent / script).is_file(), script
    for log in re.findall(r"`([\w-]+\.jsonl)`", (bench / "explore" / "README.md").read_text()):
        assert (bench / "explore" / log).is_file(), log

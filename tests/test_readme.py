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

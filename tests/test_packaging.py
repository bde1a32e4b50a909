"""The package version lives in one place (``dfkd/version.py``), and the build check that CI
runs (``make package-check``) is wired in."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import dfkd

ROOT = Path(__file__).parents[1]


def test_version_comes_from_one_place() -> None:
    text = (ROOT / "pyproject.toml").read_text()  # (tomllib is not in Python 3.10)
    assert 'dynamic = ["version"]' in text
    assert 'version = { attr = "dfkd.version.__version__" }' in text
    assert not any(line.startswith('version = "') for line in text.splitlines())
    assert importlib.metadata.version("dfkd") == dfkd.__version__


def test_ci_builds_installs_and_runs_the_wheel() -> None:
    assert "make package-check" in (ROOT / ".ci" / "run").read_text()
    script = (ROOT / "scripts" / "check-package.sh").read_text()
    for step in ("-m build", "venv", "dfkd --version", 'dfkd" demo'):
        assert step in script, step

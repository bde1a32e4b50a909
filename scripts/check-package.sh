#!/usr/bin/env bash
# Build dfkd's sdist and, from it, its wheel; install the wheel (not editable) into a fresh venv
# with its dependencies; run `dfkd --version` and `dfkd demo` there, outside the source tree.
# usage: scripts/check-package.sh [PYTHON]   (TORCH_SPEC / TORCH_PIP_ARGS as for `make install`)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
sdist=$(ls "$work"/dist/dfkd-*.tar.gz)
wheel=$(ls "$work"/dist/dfkd-*.whl)
echo "check-package: built $(basename "$sdist") and $(basename "$wheel")"
"$PY" -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check "$TORCH_SPEC" ${TORCH_PIP_ARGS:-}
"$work/venv/bin/pip" install -q --disable-pip-version-check "$wheel"
cd "$work"  # away from src/: only the installed package can be imported
version=$("$work/venv/bin/dfkd" --version)
expected="dfkd $("$work/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("dfkd"))')"
[ "$version" = "$expected" ] || { echo "check-package: '$version' != '$expected'"; exit 1; }
"$work/venv/bin/python" -c 'import dfkd, sys; assert "site-packages" in dfkd.__file__, dfkd.__file__'
"$work/venv/bin/dfkd" demo --out "$work/demo" --quiet
echo "check-package: $version installed from the wheel; dfkd demo ran"

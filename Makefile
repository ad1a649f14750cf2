# Set-up and the two README commands: `make demo` (main job: the ETT benchmark in quick mode) and
# `make test` (test suite).
# Both build a local virtual environment in .venv on first use. torch is installed before the
# package so that the range in pyproject.toml is already satisfied and pip pulls no other build;
# override TORCH_SPEC for another version (e.g. `make test TORCH_SPEC=torch`). Where pip has no
# CPU wheel at hand (PyPI's Linux torch is the multi-GB CUDA build), name PyTorch's CPU index:
# `make test TORCH_INDEX=https://download.pytorch.org/whl/cpu`.

PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# ETT data for the demo and the data tests (never shipped with the package: CC BY-ND).
ETT_DIR ?= ../shared/data/ETT
# read the files from ETT_DIR when it has them, else from the cache (downloaded once and verified)
DATA_ARG := $(if $(wildcard $(ETT_DIR)/ETTh1.csv),--data-dir $(ETT_DIR),)

export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: venv demo legt-demo bench-ett test test-slow bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),) "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m ssmforecast.benchmarks.ett --quick $(DATA_ARG) --out benchmarks/results/ett-quick

legt-demo: $(STAMP)
	$(PY) examples/demo.py --ett-dir $(ETT_DIR)

bench-ett: $(STAMP)
	$(PY) -m ssmforecast.benchmarks.ett $(DATA_ARG)

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/math_core.py
	$(PY) benchmarks/selective_scan.py
	$(PY) benchmarks/backbones.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

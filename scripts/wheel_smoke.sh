#!/usr/bin/env bash
# Build ltune's wheel, install it into a throw-away venv and run it from outside the repository.
# The throw-away venv sees the dependencies of the venv given as $1 (a .pth line), but not its
# editable ltune: what runs is the wheel, configs included.
set -euo pipefail
PYTHON=${1:-.venv/bin/python}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/dist" "$ROOT" 2>/dev/null \
  || "$PYTHON" -m pip wheel -q --no-deps -w "$WORK/dist" "$ROOT"
"$PYTHON" -m venv "$WORK/venv"
DEPS=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
SITE=$("$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$DEPS" > "$SITE/ltune-smoke-deps.pth"
"$WORK/venv/bin/python" -m pip install -q --no-deps "$WORK"/dist/ltune-*.whl
cd "$WORK"
LOCATION=$("$WORK/venv/bin/python" -c 'import ltune, pathlib; print(pathlib.Path(ltune.__file__).parent)')
case "$LOCATION" in "$ROOT"*) echo "wheel-smoke: ltune was imported from the repository ($LOCATION)" >&2; exit 1;; esac
echo "wheel-smoke: ltune from $LOCATION"
"$WORK/venv/bin/ltune" --version
"$WORK/venv/bin/ltune" train --cfg job | head -5
HF_HUB_OFFLINE=1 LTUNE_OUTPUT_DIR="$WORK/outputs" "$WORK/venv/bin/ltune" train trainer.max_steps=2 trainer.eval_every=2 \
  data.max_eval_samples=8 model.max_length=32
test -f "$WORK"/outputs/runs/*/metrics.json && echo "wheel-smoke: a 2-step run from outside the repository finished"

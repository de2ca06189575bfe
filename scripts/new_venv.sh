#!/usr/bin/env bash
# scripts/new_venv.sh PYTHON VENV [TORCH_SPEC]: a new venv at VENV with an up-to-date pip and torch
# (TORCH_SPEC, default torch==2.13.0). Where the project's .venv already holds exactly that torch
# for the same Python (CI installed it a step earlier), torch's files are hard-linked from there
# instead of unpacked a second time (about 900 MB); pip then installs torch's own requirements, so
# the venv imports torch as after a plain install. Anything else falls back to a plain install.
set -euo pipefail
PYTHON=$1
VENV=$2
SPEC=${3:-torch==2.13.0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SOURCE=${TORCH_SOURCE_VENV:-$ROOT/.venv}
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
site() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
describe() { "$1" -c 'import sys, importlib.metadata as m; print(sys.version_info[:2], m.version("torch"))' 2>/dev/null || true; }
WANT="$("$VENV/bin/python" -c 'import sys; print(sys.version_info[:2])') ${SPEC#torch==}"
if [ -x "$SOURCE/bin/python" ] && [ "$(describe "$SOURCE/bin/python")" = "$WANT" ]; then
  FROM=$(site "$SOURCE/bin/python")
  TO=$(site "$VENV/bin/python")
  # The top-level entries torch's RECORD lists (torch/, torchgen/, functorch/, the dist-info, ...).
  TOPS=$("$SOURCE/bin/python" - <<'PY'
import importlib.metadata as m
files = m.distribution("torch").files or []
print("\n".join(sorted({f.parts[0] for f in files if not str(f).startswith("..")})))
PY
)
  if cp -al $(printf "$FROM/%s " $TOPS) "$TO/" 2>/dev/null; then
    echo "new_venv: torch's files hard-linked from $SOURCE"
  else  # another file system: no hard links; a plain install instead
    (cd "$TO" && rm -rf $TOPS)
  fi
fi
"$VENV/bin/python" -m pip install -q "$SPEC"

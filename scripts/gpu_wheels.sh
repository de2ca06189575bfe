#!/usr/bin/env bash
# Download, here (PyPI reachable), the wheels ltune needs on a GPU host without network whose Python
# already has torch (CUDA), transformers >= 5.5, peft, accelerate, numpy, safetensors, scikit-learn
# and matplotlib, but not hydra-core, omegaconf or bitsandbytes. Wheels for CPython $1 (default 3.12),
# manylinux x86_64, into $2 (default gpu-wheels-cp312); at most 60 MB.
#   bash scripts/gpu_wheels.sh            # then copy gpu-wheels-cp312/ and this checkout to the host
set -euo pipefail
PYV=${1:-3.12}
TAG=cp${PYV/./}
DEST=${2:-gpu-wheels-$TAG}
PIP=${PIP:-python3 -m pip}
mkdir -p "$DEST"
PLATFORMS=(--platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_24_x86_64
           --platform manylinux_2_28_x86_64)
# What ltune imports beyond the host's stack (configs; 4/8-bit loading; GGUF files; attributions).
$PIP download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp --abi "$TAG" \
  "${PLATFORMS[@]}" -d "$DEST" hydra-core==1.3.8 omegaconf==2.3.1 bitsandbytes==0.50.2 gguf==0.19.0 captum==0.9.0 \
  requests==2.34.2 urllib3==2.8.0
# Pure-Python builds (smaller than the compiled ones, and one file for every platform).
$PIP download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation py --abi none --platform any \
  -d "$DEST" charset_normalizer==3.5.3
# antlr4-python3-runtime (hydra's and omegaconf's parser) is an sdist on PyPI: build its pure-Python wheel.
$PIP wheel -q --no-deps -w "$DEST" antlr4-python3-runtime==4.9.3
SIZE=$(du -sm "$DEST" | cut -f1)
ls -1 "$DEST"
echo "gpu-wheels: $(ls "$DEST" | wc -l) wheels, ${SIZE} MB in $DEST"
test "$SIZE" -le 60 || { echo "gpu-wheels: over the 60 MB budget" >&2; exit 1; }

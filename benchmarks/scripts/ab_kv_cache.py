"""Benchmark (issue 23), figures not a test. A/B, interleaved in one process: a SmolLM2 forward+backward (prompt-style input that needs grad) with
transformers' default key/value cache (before) and without it (after, ltune's _no_cache); also the
tokenising and collating time of a real SST-2 batch. LTUNE_GLUE_DIR=<GLUE folder> python benchmarks/scripts/ab_kv_cache.py"""
import csv
import os
import statistics
import time

import torch

from ltune.config import compose
from ltune.backbone import load_backbone
from ltune.data.collate import PairCollator
torch.manual_seed(0); torch.set_num_threads(1)
cfg = compose(["model=smollm2", "data=sst2", "model.max_length=64"])
bb = load_backbone(cfg.model, torch.device("cpu"))
# a real SST-2 batch: 32 training texts, tokenised and collated as training does
rows = list(csv.DictReader(open(os.path.join(os.environ["LTUNE_GLUE_DIR"], "SST-2", "train.tsv")), delimiter="\t", quoting=csv.QUOTE_NONE))[:32]
t = time.perf_counter(); enc = bb.tokenize([r["sentence"] for r in rows]); t_tok = time.perf_counter() - t
items = [{"input_ids": enc["input_ids"][i], "label": int(r["label"])} | ({"token_type_ids": enc["token_type_ids"][i]} if "token_type_ids" in enc else {}) for i, r in enumerate(rows)]
coll = PairCollator(bb, 2, torch.Generator().manual_seed(0))
t = time.perf_counter(); batch = coll(items); t_coll = time.perf_counter() - t
print(f"tokenise 32 texts {t_tok*1000:.1f} ms (done once per run, before training); collate one batch {t_coll*1000:.2f} ms; batch {tuple(batch['input_ids'].shape)}")
prompt = torch.randn(32, 10, bb.embedding_width, requires_grad=True)
orig = bb._no_cache
def step():
    h, m, s = bb.hidden_states(batch["input_ids"], batch["attention_mask"], prompt=prompt)
    bb.pool(h, m, s).sum().backward()
times = {"before (cache built)": [], "after (no cache)": []}
for variant in ["after (no cache)", "before (cache built)"]:
    bb._no_cache = orig if variant.startswith("after") else (lambda kw: kw)
    step()
for i in range(8):
    for variant in times:
        bb._no_cache = orig if variant.startswith("after") else (lambda kw: kw)
        t = time.perf_counter(); step(); times[variant].append(time.perf_counter() - t)
for k, v in times.items(): print(f"{k}: median {statistics.median(v)*1000:.0f} ms, min {min(v)*1000:.0f}, max {max(v)*1000:.0f} (8 steps, 1 thread, interleaved)")
a, b = (statistics.median(times[k]) for k in times)
print(f"after / before: {b/a:.3f}")

"""How far did training move an L-method's label prompts or prefixes from their start?

    python studies/offline_table_smollm2/scripts/label_map_drift.py RUN_DIR [RUN_DIR ...] [--out CSV]

For each finished L-prompt or L-prefix run with its selected parameters (trainable.safetensors, kept
in the run folder, never committed) and a deterministic start (L-prompt identity or text, L-prefix
text), rebuilds the method at its start from the run's config.yaml, loads the trained maps and
compares what the maps produce for the run's label texts:

- L-prompt: the label prompt vectors G h (real label positions), with the mean norm of the label
  tokens' word embeddings they stand in for (`word_norm`);
- L-prefix: the label prefixes' keys/values (every layer, real label positions).

`start_norm` and `norm` are mean vector norms at the start and after training, `moved` the mean
norm of the change, `map_change` the relative change of L-prompt's G, ||G - G0|| / ||G0|| (L-prefix's
text start fits Z to a random pooling vector w, so its start weights are not rebuilt; its label
prefixes at the start are the label texts' own keys/values whatever w was, so the other columns hold).
Adam moves each weight by about its learning rate per step whatever the scale of the map's input,
so a map that reads large hidden states moves its output fast: this shows how fast.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import torch

try:
    import ltune  # noqa: F401
except ImportError:  # run from a checkout without ltune installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the checkout

DETERMINISTIC_STARTS = {"l_prompt": ("identity", "text"), "l_prefix": ("text",)}


def outputs(method) -> torch.Tensor:
    """What the maps produce, one row per real label position (and layer, key/value, head for L-prefix)."""
    real = method.label_mask
    if method.config.name == "l_prompt":
        return method.prompt_map(method.label_states)[real]
    kv = method.label_prefixes()  # (layers, 2, K, kv heads, l, head dim)
    return kv.permute(0, 1, 3, 2, 4, 5)[:, :, :, real].reshape(-1, kv.shape[-1])


@torch.no_grad()
def drift_row(run: Path, backbones: dict) -> dict | None:
    from omegaconf import OmegaConf
    from safetensors.torch import load_file

    from ltune.backbone import load_backbone
    from ltune.data.label_texts import label_texts_of
    from ltune.methods import build_method, method_config

    cfg = OmegaConf.load(run / "config.yaml")
    name, init = str(cfg.method.name), str(cfg.method.get("init", ""))
    if init not in DETERMINISTIC_STARTS.get(name, ()) or not (run / "trainable.safetensors").exists():
        print(f"ltune: skipped {run}: not an L-method run with a deterministic start and its trained maps",
              file=sys.stderr)
        return None
    key = OmegaConf.to_yaml(cfg.model)
    if key not in backbones:
        backbones[key] = load_backbone(cfg.model, "cpu")
        backbones[key].model.eval()
    backbone = backbones[key]
    method = build_method(method_config(OmegaConf.to_container(cfg.method, resolve=True)), backbone,
                          label_texts_of(cfg.data, backbone.tokenizer)).eval()
    metrics = json.loads((run / "metrics.json").read_text())
    row = {"run": run.name, "method": name, "init": init, "lr": float(cfg.trainer.lr),
           "map_lr_scale": float(cfg.method.get("map_lr_scale", 1.0)), "seed": int(cfg.seed),
           "best_step": metrics["selection"]["best_step"], "heldout_accuracy": metrics["selection"]["score"],
           "dev_accuracy": metrics["dev"]["accuracy"]}
    return {**row, **drift(method, load_file(run / "trainable.safetensors"))}


@torch.no_grad()
def drift(method, trained: dict[str, torch.Tensor]) -> dict:
    """The drift columns (module docstring) of ``method``, built at its start, once ``trained`` is
    loaded into it (it is, afterwards)."""
    prompt = method.config.name == "l_prompt"
    start, start_map = outputs(method).float(), method.prompt_map.weight.clone() if prompt else None
    method.load_trainable_state_dict(trained)
    now = outputs(method).float()
    change = float((method.prompt_map.weight - start_map).norm() / start_map.norm()) if prompt else ""
    return {"map_change": change, "start_norm": float(start.norm(dim=-1).mean()),
            "norm": float(now.norm(dim=-1).mean()), "moved": float((now - start).norm(dim=-1).mean()),
            "word_norm": method.prompt_and_word_norms()[1] if prompt else ""}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    missing = [str(r) for r in args.runs if not (r / "metrics.json").exists() or not (r / "config.yaml").exists()]
    if missing:
        print(f"ltune: not finished run folders: {', '.join(missing)}; give folders with metrics.json and config.yaml",
              file=sys.stderr)
        return 2
    backbones: dict = {}
    rows = [{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
            for run in args.runs if (row := drift_row(run, backbones))]
    for row in rows:
        print(f"{row['run']}: held-out {row['heldout_accuracy']:.3f} (step {row['best_step']}), map change "
              f"{'-' if row['map_change'] == '' else row['map_change']}, output norm {row['start_norm']:.2f} -> {row['norm']:.2f}, moved {row['moved']:.2f}"
              + (f" (word embeddings {row['word_norm']:.2f})" if row["word_norm"] != "" else ""))
    if args.out and rows:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())

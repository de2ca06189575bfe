"""Say, before an hour is lost, what `make reproduce-paper` lacks: the hub, a GPU, gated access."""

from __future__ import annotations

import os
import sys

MODELS = ["bert-base-uncased", "roberta-base", "microsoft/deberta-v3-base", "tiiuae/falcon-7b",
          "bigscience/bloom-7b1", "meta-llama/Llama-2-7b-hf"]
DATASETS = ["nyu-mll/glue"]


def main() -> int:
    missing = []
    try:
        import torch

        if not torch.cuda.is_available():
            missing.append("a CUDA GPU (torch.cuda.is_available() is False); 7B models need about 16 GB in bfloat16")
    except ImportError:
        missing.append("torch (run make install)")
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        missing.append("the Hugging Face hub: HF_HUB_OFFLINE=1 is set (unset it: HF_HUB_OFFLINE=0 make reproduce-paper)")
    else:
        from huggingface_hub import HfApi

        api = HfApi()
        for repo in MODELS:
            try:
                api.model_info(repo, timeout=10)
            except Exception as err:  # noqa: BLE001 - any failure means the run would fail later
                missing.append(f"hub model {repo}: {type(err).__name__} ({str(err).splitlines()[0][:120]})")
        for repo in DATASETS:
            try:
                api.dataset_info(repo, timeout=10)
            except Exception as err:  # noqa: BLE001
                missing.append(f"hub data set {repo}: {type(err).__name__} ({str(err).splitlines()[0][:120]})")
    if missing:
        print("make reproduce-paper cannot run here; missing:", file=sys.stderr)
        for item in missing:
            print(f"  - {item}", file=sys.stderr)
        print("The offline comparison runs anywhere: make reproduce-offline LTUNE_GLUE_DIR=<GLUE folder>", file=sys.stderr)
        return 1
    print("reproduce-paper: GPU and hub access found")
    return 0


if __name__ == "__main__":
    sys.exit(main())

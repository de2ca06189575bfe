"""What the benchmarks feed a method: synthetic batches of one shape, and a method's default config."""

from __future__ import annotations

import torch


def synthetic_batch(backbone, size: int, length: int, num_labels: int, generator: torch.Generator) -> dict:
    """Random token ids of one fixed shape, collated as training collates them (pairs included)."""
    from ltune.data.collate import PairCollator

    vocab = backbone.model.get_input_embeddings().weight.shape[0]
    ids = torch.randint(1000, vocab, (size, length), generator=generator).tolist()
    labels = torch.randint(0, num_labels, (size,), generator=generator).tolist()
    items = [{"input_ids": row, "token_type_ids": [0] * length, "label": y} for row, y in zip(ids, labels)]
    return PairCollator(backbone, num_labels, generator)(items)


def cfg_method_defaults(name: str) -> dict:
    from omegaconf import OmegaConf

    from ltune.config import compose

    return OmegaConf.to_container(compose([f"method={name}"]).method, resolve=True)

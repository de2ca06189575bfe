"""What the benchmarks share: synthetic batches of one shape, a method's default config, and timing a piece of work."""

from __future__ import annotations

import time

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


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device, work) -> tuple[float, float | None]:
    """(seconds ``work`` takes, the GPU synchronised around it; on CUDA the most memory it allocated on top of
    what was allocated before, in MB, else None)."""
    before = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    sync(device)
    tick = time.perf_counter()
    work()
    sync(device)
    seconds = time.perf_counter() - tick
    extra = (torch.cuda.max_memory_allocated(device) - before) / 2**20 if before is not None else None
    return seconds, extra

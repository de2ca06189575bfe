"""Batches of similar length: most texts are far shorter than the longest one in a random batch,
so random batches spend most of their compute on padding (SST-2 with minilm: a third of the
processed tokens are real). Grouping by length keeps the order random where it matters: which
examples share a group, and the order of the batches.
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


class LengthGroupedBatches(Sampler):
    """Each epoch: a seeded random permutation of the examples, cut into groups of
    ``batch_size * group_batches``; each group sorted by length and cut into batches; the batch
    order then shuffled again. Every random draw comes from ``generator`` at the start of the
    epoch, so restoring the generator's state restores the epoch (exact resume).
    """

    def __init__(self, lengths: list[int], batch_size: int, generator: torch.Generator, group_batches: int = 50,
                 processes: int = 1):
        self.lengths = torch.tensor(lengths)
        self.batch_size = batch_size
        self.generator = generator
        self.processes = processes
        self.global_batch = batch_size * processes
        self.group = self.global_batch * group_batches

    def __len__(self) -> int:
        return sum(len(b) for b in self._global_batches_of(torch.arange(len(self.lengths))))

    def _global_batches_of(self, order: torch.Tensor) -> list[list[list[int]]]:
        """Each global batch as ``processes`` consecutive per-process batches."""
        batches = []
        for start in range(0, len(order), self.group):
            group = order[start:start + self.group]
            # Longest first within a group; a stable sort keeps the random order among equals.
            group = group[torch.sort(-self.lengths[group], stable=True).indices]
            for i in range(0, len(group), self.global_batch):
                chunk = group[i:i + self.global_batch].tolist()
                batches.append([chunk[j:j + self.batch_size] for j in range(0, len(chunk), self.batch_size)])
        return batches

    def __iter__(self):
        # Data parallel: accelerate deals the batches out in turn, so process p gets part p of
        # every global batch, and the global batch is what one process with batch_size x
        # processes would have drawn.
        batches = self._global_batches_of(torch.randperm(len(self.lengths), generator=self.generator))
        for index in torch.randperm(len(batches), generator=self.generator).tolist():
            yield from batches[index]


def length_sorted(lengths: list[int]) -> list[int]:
    """Indices from the longest example to the shortest (for evaluation batches: every example is
    scored once, in any order, and its scores carry its id)."""
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


def padding_efficiency(batch_lengths: list[list[int]]) -> float:
    """Real tokens / processed tokens (batch size x longest text) over a list of batches."""
    real = sum(sum(b) for b in batch_lengths)
    processed = sum(len(b) * max(b) for b in batch_lengths if b)
    return real / processed if processed else 1.0

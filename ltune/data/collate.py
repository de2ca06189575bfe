"""Tokenised examples and the two collators: plain (text, label) batches, and the
L-Tuning pair batches (half positive, half negative pairs)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from torch.utils.data import DataLoader, Subset

from ltune.backbone import Backbone
from ltune.data import Example
from ltune.data.batching import length_sorted


class TokenizedExamples(Dataset):
    """Examples tokenised once, up front (no tokenizer call on the training path)."""

    def __init__(self, examples: list[Example], backbone: Backbone):
        firsts = [e.texts[0] for e in examples]
        seconds = [e.texts[1] for e in examples] if examples and len(examples[0].texts) > 1 else None
        encoded = backbone.tokenize(firsts, seconds)
        self.features = [{key: values[i] for key, values in encoded.items()} for i in range(len(examples))]
        self.labels = [e.label for e in examples]
        self.ids = [e.id for e in examples]

    def __len__(self) -> int:
        return len(self.features)

    def lengths(self) -> list[int]:
        return [len(f["input_ids"]) for f in self.features]

    def __getitem__(self, index: int) -> dict:
        return {**self.features[index], "label": self.labels[index], "id": self.ids[index]}


class ClassificationCollator:
    def __init__(self, backbone: Backbone):
        self.backbone = backbone

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.backbone.pad(items)
        batch["labels"] = torch.tensor([item["label"] for item in items], dtype=torch.long)
        batch["ids"] = torch.tensor([item.get("id", -1) for item in items], dtype=torch.long)
        return batch


class PairCollator(ClassificationCollator):
    """Paper appendix A.3: of each batch of m texts, half are paired with their gold label
    (target 1) and half with a uniformly drawn wrong label (target 0)."""

    def __init__(self, backbone: Backbone, num_labels: int, generator: torch.Generator):
        super().__init__(backbone)
        self.num_labels = num_labels
        self.generator = generator

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        batch = super().__call__(items)
        size = len(items)
        negatives = torch.randperm(size, generator=self.generator)[: size // 2]
        targets = torch.ones(size, dtype=torch.long)
        targets[negatives] = 0
        # A uniform wrong label: shift the gold label by 1..K-1 (mod K).
        shift = torch.randint(1, self.num_labels, (size,), generator=self.generator)
        pair_labels = torch.where(targets == 1, batch["labels"], (batch["labels"] + shift) % self.num_labels)
        batch["pair_labels"], batch["pair_targets"] = pair_labels, targets
        return batch


def evaluation_loader(examples: list[Example], backbone: Backbone, batch_size: int,
                      by_length: bool = True) -> DataLoader:
    """Batches of examples to score; by default from the longest text to the shortest, so a batch
    holds texts of similar length (the scores carry each example's id, and every metric is
    independent of the order). ``by_length=False`` keeps the given order."""
    dataset = TokenizedExamples(examples, backbone)
    if by_length:
        dataset = Subset(dataset, length_sorted(dataset.lengths()))
    return DataLoader(dataset, batch_size=batch_size, collate_fn=ClassificationCollator(backbone))

from collections import Counter

import torch

from ltune.data.collate import ClassificationCollator, PairCollator
from tests.tiny import tiny_backbone


def items(labels):
    return [{"input_ids": [101, 2000 + i, 102], "token_type_ids": [0, 0, 0], "label": y} for i, y in enumerate(labels)]


def test_pairs_are_half_positive_half_negative_and_negatives_never_gold():
    backbone = tiny_backbone("bert")
    collate = PairCollator(backbone, num_labels=4, generator=torch.Generator().manual_seed(0))
    drawn = Counter()
    for trial in range(200):
        labels = [(trial + i) % 4 for i in range(16)]
        batch = collate(items(labels))
        targets, pairs, gold = batch["pair_targets"], batch["pair_labels"], batch["labels"]
        assert targets.sum().item() == 8  # exactly half positive
        assert (pairs[targets == 1] == gold[targets == 1]).all()
        assert (pairs[targets == 0] != gold[targets == 0]).all()
        for g, p in zip(gold[targets == 0].tolist(), pairs[targets == 0].tolist()):
            drawn[(p - g) % 4] += 1
    # The wrong label is uniform over the 3 others: each shift about 1/3 of 1600 draws.
    assert set(drawn) == {1, 2, 3}
    assert all(abs(count - 1600 / 3) < 100 for count in drawn.values())


def test_odd_batches_and_plain_collation():
    backbone = tiny_backbone("bert")
    batch = PairCollator(backbone, 2, torch.Generator().manual_seed(1))(items([0, 1, 1]))
    assert batch["pair_targets"].tolist().count(0) == 1
    plain = ClassificationCollator(backbone)(items([1, 0]))
    assert plain["labels"].tolist() == [1, 0] and plain["input_ids"].shape == (2, 3)

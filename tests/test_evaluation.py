import math

import pytest
import torch
from torch.utils.data import DataLoader

from ltune.evaluation import compute_metrics, evaluate
from ltune.methods.base import TuningMethod


class FixedScores(TuningMethod):
    """Returns a constructed score table, to check the argmax evaluation itself."""

    def __init__(self, table):
        torch.nn.Module.__init__(self)
        self.table = table

    def label_scores(self, batch):
        return self.table[batch["index"]]

    def training_loss(self, batch):
        return torch.tensor(0.0)

    def paper_trainable_params(self):
        return 0


def test_prediction_is_the_argmax_over_all_labels():
    table = torch.tensor([[0.1, 0.7, 0.2], [0.9, 0.0, 0.5], [0.2, 0.3, 0.31], [0.5, 0.4, 0.1]])
    labels = torch.tensor([1, 2, 2, 0])
    rows = [{"index": torch.tensor(i), "labels": labels[i], "ids": torch.tensor(i)} for i in range(4)]
    loader = DataLoader(rows, batch_size=3, collate_fn=lambda r: {k: torch.stack([x[k] for x in r]) for k in r[0]})
    metrics = evaluate(FixedScores(table), loader, "cpu", ["accuracy", "macro_f1"])
    assert metrics["accuracy"] == pytest.approx(3 / 4)  # predictions 1, 0, 2, 0


def test_matthews_correlation_is_reported_for_cola():
    predictions, labels = [1, 1, 0, 0, 1, 0], [1, 0, 0, 0, 1, 1]
    tp, tn, fp, fn = 2, 2, 1, 1
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    metrics = compute_metrics(predictions, labels, ["accuracy", "matthews_corr"])
    assert metrics["matthews_corr"] == pytest.approx(expected)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert compute_metrics([1] * 6, labels, ["matthews_corr"])["matthews_corr"] == 0.0


def test_unknown_metric_is_rejected():
    with pytest.raises(ValueError, match="unknown metric"):
        compute_metrics([0], [0], ["bleu"])

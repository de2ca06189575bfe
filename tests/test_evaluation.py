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


def test_the_majority_rate_is_what_the_most_frequent_class_alone_scores():
    labels = [2, 2, 2, 0, 1, 2, 2, 2]  # 6 of 8 in class 2
    assert compute_metrics([0] * 8, labels, ["accuracy"])["majority_rate"] == pytest.approx(0.75)
    assert compute_metrics([2] * 8, labels, ["accuracy"])["accuracy"] == pytest.approx(0.75)


def test_unknown_metric_is_rejected():
    with pytest.raises(ValueError, match="unknown metric"):
        compute_metrics([0], [0], ["bleu"])


def test_tied_labels_are_grouped_and_named():
    """Issue 21, item 2: labels whose scores agree on every text (within 1e-6) form a group; only
    the group's first label can win the argmax."""
    from ltune.evaluation import tie_warning, tied_label_groups

    scores = torch.tensor([[0.3, 0.3, -1.0, 0.3], [2.0, 2.0 + 1e-8, 0.5, 2.0], [-0.4, -0.4, 0.1, -0.4]])
    assert tied_label_groups(scores) == [[0, 1, 3]]
    assert tied_label_groups(scores[:, :3] + torch.tensor([0.0, 1e-3, 0.0])) == []  # close is not tied
    names = ["sports", "cooking", "technology", "travel"]
    line = tie_warning(tied_label_groups(scores), names, "l_prefix", 3)
    assert line.startswith("ltune: warning:") and "'sports', 'cooking', 'travel' (only 'sports' can be predicted)" in line
    assert "method.z_input=states, method.pool_softmax=false, or label texts of different token lengths" in line
    assert tie_warning([], names, "l_prefix", 3) is None


def test_unequal_classes_add_balanced_accuracy_so_the_majority_class_scores_no_more_than_chance():
    """Issue 43, item 4: with 95/5 labels, predicting the majority class scores 0.95 accuracy, what the
    majority rate says; balanced accuracy gives it 0.5. Equal classes add nothing."""
    labels = [0] * 95 + [1] * 5
    found = compute_metrics([0] * 100, labels, ["accuracy"])
    assert found["accuracy"] == pytest.approx(0.95) == found["majority_rate"]
    assert found["balanced_accuracy"] == pytest.approx(0.5)
    assert "balanced_accuracy" not in compute_metrics([0, 1] * 50, [0, 1] * 50, ["accuracy"])

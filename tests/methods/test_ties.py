"""L-prefix with the paper's Z over the pooling weights (issue 21, item 2): once the pooling
softmax puts its weight on the same position, label texts of the same token length get the same
prefix and tie on every text. The method says which labels; the way out breaks the tie."""

import torch

from ltune.evaluation import tied_label_groups
from ltune.methods import build_method
from tests.tiny import method_cfg, tiny_backbone

#: "sports" and "travel" have the same token length; the third label is longer.
LABELS = ["this text is about sports", "this text is about travel", "this text is about cooking and food"]
TEXTS = ["The striker scored twice.", "Whisk the eggs.", "A long train ride through the mountains."]


def saturate(method) -> None:
    """Put (almost) all pooling weight on the first position ([CLS]) of every label: w along the
    labels' first-position state, scaled up (what a large learning rate does over many steps)."""
    with torch.no_grad():
        first = method.label_states[:, 0].mean(0)
        method.pool_weight.copy_(1e4 * first / first.norm())


def scores(method):
    backbone = method.backbone
    batch = backbone.pad([{k: v[i] for k, v in backbone.tokenize(TEXTS).items()} for i in range(len(TEXTS))])
    with torch.no_grad():
        return method.label_scores(batch)


def test_saturated_pooling_ties_labels_of_the_same_length():
    torch.manual_seed(0)
    method = build_method(method_cfg("l_prefix"), tiny_backbone("bert"), LABELS).eval()
    assert method.identical_label_pairs() == [] and tied_label_groups(scores(method), method) == []
    saturate(method)
    pooled = method.pooled_label_scores()
    assert bool((pooled[:, 0] > 0.999).all())  # the softmax sits on the same position for every label
    assert method.identical_label_pairs() == [(0, 1)]  # the longer label's mask differs: no tie with it
    table = scores(method)
    assert torch.allclose(table[:, 0], table[:, 1], 1e-5, 1e-6) and not torch.allclose(table[:, 0], table[:, 2], 1e-5, 1e-6)
    assert tied_label_groups(table, method) == [[0, 1]]


def test_z_over_label_states_breaks_the_tie():
    torch.manual_seed(0)
    method = build_method(method_cfg("l_prefix", z_input="states"), tiny_backbone("bert"), LABELS).eval()
    assert tied_label_groups(scores(method), method) == []


def test_labels_whose_scores_nearly_tie_are_warned_about():
    """Issue 44, item 13: DESC and ENTY within 0.011 of each other on all 500 dev texts got no warning, where
    only exact ties were checked. Near ties are measured against the scores' spread."""
    from ltune.evaluation import near_tie_warning, near_tied_pairs

    torch.manual_seed(0)
    scores = torch.randn(500, 3) * 2
    scores[:, 2] = scores[:, 1] + 0.011 * torch.rand(500)  # label 2 a hair from label 1 everywhere
    pairs = near_tied_pairs(scores)
    assert [(i, j) for i, j, _, _ in pairs] == [(1, 2)] and pairs[0][2] <= 0.011
    line = near_tie_warning(pairs, ["HUM", "DESC", "ENTY"], "l_prefix", 500)
    assert line.startswith("ltune: warning: labels whose scores nearly tie on all 500 texts: 'DESC' and 'ENTY'")
    assert near_tied_pairs(scores, tied=[[1, 2]]) == []  # an exact tie is warned about as one already
    assert near_tied_pairs(torch.randn(500, 3)) == []

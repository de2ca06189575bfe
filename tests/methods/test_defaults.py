"""Every method's default learning rate comes from the project's held-out evidence (issue 21,
item 6): the rate of its lr_search with the best mean held-out accuracy over the cells of
studies/offline_table/tuning.json (minilm on CoLA, RTE and SST-2, chosen on held-out, never dev).
Methods the table did not search keep a default inside their own search space."""

import collections
import json
import statistics
from pathlib import Path

import pytest

from ltune.methods import METHODS, method_config

TUNING = Path(__file__).resolve().parents[2] / "studies" / "offline_table" / "tuning.json"


def best_heldout_lr() -> dict[str, float]:
    per_method = collections.defaultdict(lambda: collections.defaultdict(list))
    for cell in json.loads(TUNING.read_text())["cells"]:
        method = next(c.split("=", 1)[1] for c in cell["cell"] if c.startswith("method="))
        for lr, accuracy in cell["heldout_accuracy"].items():
            per_method[method][float(lr)].append(accuracy)
    return {m: max(lrs, key=lambda lr: statistics.fmean(lrs[lr])) for m, lrs in per_method.items()}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_default_lr_comes_from_the_heldout_evidence(name):
    cfg = method_config({"name": name})
    assert cfg.lr in cfg.lr_search, f"{name}: default lr {cfg.lr} is outside its own lr_search {cfg.lr_search}"
    evidence = best_heldout_lr()
    if name in evidence:
        assert cfg.lr == pytest.approx(evidence[name])

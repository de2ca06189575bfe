"""The L-methods' optimisation settings: method.map_lr_scale (maps at method.lr times it, head at
method.lr) and method.objective (the paper's pairs, or softmax over each text's label scores)."""

import pytest
import torch

from ltune.errors import LtuneError
from ltune.runtime import build_optimizer
from tests.methods.test_methods import make
from tests.tiny import method_cfg

MAPS = {"l_prompt": ("prompt_map.weight",), "l_prefix": ("pool_weight", "transform.weight")}


def one_step(name: str, scale: float, lr: float = 1e-2):
    method, batch = make("llama", name, map_lr_scale=scale)
    groups = method.optimizer_groups(lr)
    optimizer = build_optimizer(groups, lr, weight_decay=0.0, fused=False)
    before = {n: p.detach().clone() for n, p in method.named_parameters() if p.requires_grad}
    method.train().training_loss(batch).backward()
    optimizer.step()
    moved = {n: (p.detach() - before[n]).abs().max().item() for n, p in method.named_parameters() if p.requires_grad}
    return groups, moved


def map_names(name: str, moved: dict) -> list[str]:
    names = [n for n in moved if not n.startswith("head.")]
    assert names and all(n.startswith(MAPS[name]) for n in names), names
    return names


@pytest.mark.parametrize("name", ["l_prompt", "l_prefix"])
def test_by_default_maps_and_head_share_one_rate(name):
    groups, moved = one_step(name, 1.0)
    assert [g["lr"] for g in groups] == [1e-2]
    assert all(step > 0 for step in moved.values()), moved


@pytest.mark.parametrize("name", ["l_prompt", "l_prefix"])
def test_scale_zero_keeps_the_maps_at_their_start_and_trains_the_head(name):
    groups, moved = one_step(name, 0.0)
    assert [g["lr"] for g in groups] == [0.0, 1e-2]
    assert all(moved[n] == 0 for n in map_names(name, moved)), moved
    assert moved["head.weight"] > 0


def test_a_smaller_scale_moves_the_maps_by_that_much_less():
    _, full = one_step("l_prompt", 1.0)
    _, small = one_step("l_prompt", 0.01)
    # Adam's first step moves every entry by about its rate, whatever its gradient's size.
    assert small["prompt_map.weight"] == pytest.approx(full["prompt_map.weight"] * 0.01, rel=1e-3)
    assert small["head.weight"] == pytest.approx(full["head.weight"], rel=1e-3)


def test_a_negative_scale_is_refused():
    with pytest.raises(LtuneError, match="map_lr_scale"):
        method_cfg("l_prompt", map_lr_scale=-0.1)


@pytest.mark.parametrize("name", ["l_prompt", "l_prefix"])
def test_the_softmax_objective_is_cross_entropy_over_each_texts_label_scores(name):
    method, batch = make("llama", name, objective="softmax")
    method.train()
    expected = torch.nn.functional.cross_entropy(method.label_scores(batch), batch["labels"])
    torch.testing.assert_close(method.training_loss(batch), expected)
    paper, _ = make("llama", name)
    pairs = paper.train().pair_logits(batch, batch["pair_labels"])
    torch.testing.assert_close(paper.training_loss(batch), torch.nn.functional.binary_cross_entropy_with_logits(
        pairs, batch["pair_targets"].float()))


@pytest.mark.parametrize("name", ["l_prompt", "l_prefix"])
def test_held_out_loss_is_the_runs_own_objective(name):
    """A softmax run's held-out loss (early stopping's and the plots' loss) is cross-entropy over the
    label scores, as it trains; a pairs run's is binary cross-entropy over all K pairs."""
    scores, labels = torch.tensor([[2.0, -1.0], [0.5, 1.5], [-0.3, 0.2]]), torch.tensor([0, 0, 1])
    softmax, _ = make("llama", name, objective="softmax")
    torch.testing.assert_close(softmax.eval_loss(scores, labels), torch.nn.functional.cross_entropy(scores, labels))
    paper, _ = make("llama", name)
    torch.testing.assert_close(paper.eval_loss(scores, labels), torch.nn.functional.binary_cross_entropy_with_logits(
        scores, torch.nn.functional.one_hot(labels, 2).float()))


def test_an_unknown_objective_is_refused():
    with pytest.raises(LtuneError, match="objective.*expected one of \\[pairs, softmax\\]"):
        method_cfg("l_prompt", objective="hinge")


def test_a_run_logs_the_heads_rate_when_the_maps_train_slower(trained_runs):
    import json

    def logged(run):
        return [json.loads(line)["lr"] for line in (run / "log.jsonl").read_text().splitlines()]

    scaled = logged(trained_runs("l_prompt", "method.map_lr_scale=0.1"))
    assert scaled == pytest.approx(logged(trained_runs("l_prompt"))) and max(scaled) > 0

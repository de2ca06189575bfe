import itertools

import pytest
import torch

from ltune.errors import LtuneError
from ltune.methods import METHODS, build_method, method_config
from tests.tiny import FAMILIES, LABEL_TEXTS, method_cfg, tiny_backbone

TEXTS = ["a short text", "another, much longer text with more words in it", "third one"]


def make(family, name, **overrides):
    backbone = tiny_backbone(family)
    method = METHODS[name].model(backbone, method_cfg(name, **overrides), LABEL_TEXTS)
    encoded = backbone.tokenize(TEXTS)
    batch = backbone.pad([{k: v[i] for k, v in encoded.items()} for i in range(len(TEXTS))])
    batch["labels"] = torch.tensor([0, 2, 1])
    batch["pair_labels"] = torch.tensor([0, 1, 1])
    batch["pair_targets"] = torch.tensor([1, 0, 1])
    return method, batch


@pytest.mark.parametrize("family,name", list(itertools.product(FAMILIES, METHODS)))
def test_training_step_updates_only_the_method(family, name):
    method, batch = make(family, name)
    method.train()
    loss = method.training_loss(batch)
    assert torch.isfinite(loss)
    loss.backward()
    for param_name, param in method.named_parameters():
        if param_name.startswith("backbone.") and "lora_" not in param_name:  # LoRA's updates live in the model
            assert not param.requires_grad and param.grad is None, param_name
        else:
            assert param.requires_grad and param.grad is not None, param_name
            if ".lora_A." not in param_name:  # LoRA starts with B = 0, so A's first gradient is 0
                assert param.grad.abs().sum() > 0, f"{param_name} gets no gradient"
    scores = method.eval().label_scores(batch)
    assert scores.shape == (3, len(LABEL_TEXTS)) and torch.isfinite(scores).all()


@pytest.mark.parametrize("family,name", list(itertools.product(FAMILIES, METHODS)))
def test_score_does_not_depend_on_batch_padding(family, name):
    method, batch = make(family, name)
    method.eval()
    together = method.label_scores(batch)
    alone = {k: v[2:3, : int(batch["attention_mask"][2].sum())] if v.dim() == 2 else v[2:3] for k, v in batch.items()}
    torch.testing.assert_close(method.label_scores(alone)[0], together[2], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("family", ["bert", "llama"])
def test_tuned_parameters_change_the_scores(family, name):
    method, batch = make(family, name)
    method.eval()
    before = method.label_scores(batch)
    with torch.no_grad():
        for param_name, param in method.named_parameters():
            if param.requires_grad and "head" not in param_name:
                param.add_(torch.randn_like(param) * param.std().clamp(min=0.1))
    assert (method.label_scores(batch) - before).abs().max() > 1e-4


def paper_formula(name, d, m, kv, l, k, p):
    """PAPER.md's counts: L-prefix 2 l^2 m d + 3d (kv = d for multi-head attention; grouped
    models use kv = key/value heads x head dim), L-prompt d^2 + 2d, prefix/prompt with a K-way head."""
    formulas = {
        "l_prefix": lambda: 2 * l * l * m * kv + 3 * d,
        "l_prompt": lambda: d * d + 2 * d,
        "prefix": lambda: p * m * 2 * kv + d * k + k,
        "prompt": lambda: p * d + d * k + k,
        "peft_prompt": lambda: p * d + d * k + k,
        "peft_lora": lambda: None,  # no paper formula; its own count is checked in test_peft_lora_*
    }
    return formulas[name]()


@pytest.mark.parametrize("family,name", list(itertools.product(["bert", "llama", "falcon"], METHODS)))
def test_trainable_parameters_match_the_paper_formulas(family, name):
    method, _ = make(family, name)
    b = method.backbone
    counted = sum(p.numel() for p in method.parameters() if p.requires_grad)
    l = method.label_length if name.startswith("l_") else None
    expected = paper_formula(name, b.hidden_size, b.num_layers, b.num_kv_heads * b.head_dim, l, 3, 4)
    if expected is None:
        expected = counted
    assert counted == expected == method.paper_trainable_params()
    if family == "bert" and name == "l_prefix":  # multi-head: exactly the paper's 2 l^2 m d + 3 d
        d, m = b.hidden_size, b.num_layers
        assert counted == 2 * l**2 * m * d + 3 * d


def test_reparameterised_prefix_count():
    method, _ = make("bert", "prefix", reparameterize=True, reparam_hidden=8)
    counted = sum(p.numel() for p in method.parameters() if p.requires_grad)
    d, m, p, h = 32, 2, 4, 8
    assert counted == p * d + (d * h + h) + (h * m * 2 * d + m * 2 * d) + d * 3 + 3


@pytest.mark.parametrize("name", ["l_prefix", "l_prompt"])
def test_cached_label_states_equal_a_fresh_encoding(name):
    method, batch = make("bert", name)
    method.eval()
    with torch.no_grad():
        method.head.weight.mul_(100)  # make score differences visible
    cached = method.label_scores(batch)
    backbone = method.backbone
    fresh = backbone.encode_label_batch(backbone.label_batch(LABEL_TEXTS))
    torch.testing.assert_close(method.label_states, fresh)
    method.label_states = torch.zeros_like(method.label_states)  # prove the cache is what is read
    assert (method.label_scores(batch) - cached).abs().max() > 1e-4
    method.label_states = fresh
    torch.testing.assert_close(method.label_scores(batch), cached)


def test_label_states_are_encoded_once_not_per_step(monkeypatch):
    method, batch = make("bert", "l_prefix")
    calls = []
    original = method.backbone.encode_label_batch
    monkeypatch.setattr(method.backbone, "encode_label_batch", lambda *a: calls.append(1) or original(*a))
    method.train()
    for _ in range(3):
        method.training_loss(batch).backward()
    assert calls == []
    method.config.reencode_labels = True  # the reference code's behaviour, as an ablation
    method.training_loss(batch).backward()
    assert calls == [1]


def test_label_padding_is_masked_in_the_l_prefix_pooling():
    method, _ = make("bert", "l_prefix")
    weights = method.pooled_label_scores()
    lengths = method.label_mask.sum(1)
    assert len(set(lengths.tolist())) > 1  # the label texts differ in length
    torch.testing.assert_close(weights.sum(1), torch.ones(len(LABEL_TEXTS)))
    assert (weights[~method.label_mask] == 0).all()
    raw = make("bert", "l_prefix", pool_softmax=False)[0].pooled_label_scores()
    assert (raw[~method.label_mask] == 0).all() and not torch.allclose(raw.sum(1), torch.ones(3))


def test_single_token_labels_with_softmax_pooling_are_refused():
    backbone = tiny_backbone("bert")
    with pytest.raises(LtuneError, match="single token"):
        build_method(method_cfg("l_prefix"), backbone, ["good", "bad"])
    build_method(method_cfg("l_prefix", pool_softmax=False), backbone, ["good", "bad"])


def test_unknown_method_key_is_named():
    with pytest.raises(LtuneError, match=r"method=prefix: Key 'prefix_len' not in 'PrefixConfig'"):
        method_config({"name": "prefix", "lr": 0.1, "prefix_len": 3})


@pytest.mark.parametrize("family", ["bert", "deberta", "llama"])
@pytest.mark.parametrize("name", ["l_prefix", "prompt"])
def test_bf16_autocast_step_keeps_trainable_weights_in_fp32(family, name):
    from ltune.evaluation import autocast

    method, batch = make(family, name)
    method.train()
    with autocast("cpu", "bf16"):
        loss = method.training_loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    for param in method.parameters():
        if param.requires_grad:
            assert param.dtype == torch.float32 and param.grad.dtype == torch.float32


@pytest.mark.parametrize("family", FAMILIES)
def test_peft_prompt_computes_what_our_prompt_computes(family):
    """Same prompt vectors and head: peft's PromptTuning and ours give the same scores."""
    ours, batch = make(family, "prompt")
    theirs = METHODS["peft_prompt"].model(tiny_backbone(family), method_cfg("peft_prompt"), LABEL_TEXTS)
    with torch.no_grad():
        theirs.prompt_embedding.weight.copy_(ours.prompt)
        theirs.head.load_state_dict(ours.head.state_dict())
    torch.testing.assert_close(theirs.eval().label_scores(batch), ours.eval().label_scores(batch), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_peft_prompt_leaves_the_shared_model_to_the_other_methods(family):
    """ltune bench runs every method on one backbone: wrapping it in peft must not change what the
    other methods compute."""
    prefix, batch = make(family, "l_prefix")
    prefix.eval()
    with torch.no_grad():
        before = prefix.label_scores(batch)
        METHODS["peft_prompt"].model(prefix.backbone, method_cfg("peft_prompt"), LABEL_TEXTS)
        after = prefix.label_scores(batch)
    torch.testing.assert_close(after, before, atol=0, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_l_prompt_score_of_a_label_does_not_depend_on_the_other_labels_lengths(family):
    """RTE-like label texts of different token lengths: "yes" is padded to the longest label.
    Its score must equal the score it gets next to a label of its own length (issue 9, defect 1)."""
    backbone = tiny_backbone(family)
    short = METHODS["l_prompt"].model(backbone, method_cfg("l_prompt"), ["yes", "no"])
    mixed = METHODS["l_prompt"].model(backbone, method_cfg("l_prompt"), ["yes", "it does not follow at all"])
    assert mixed.label_mask[0].sum() < mixed.label_mask.shape[1]  # "yes" really is padded
    mixed.load_trainable_state_dict(short.trainable_state_dict())
    encoded = backbone.tokenize(TEXTS)
    batch = backbone.pad([{k: v[i] for k, v in encoded.items()} for i in range(len(TEXTS))])
    with torch.no_grad():
        torch.testing.assert_close(mixed.eval().label_scores(batch)[:, 0], short.eval().label_scores(batch)[:, 0],
                                   atol=1e-5, rtol=1e-4)


# -- LoRA (issue 13) ----------------------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_peft_lora_trains_only_its_updates_and_the_head(family, tmp_path):
    """Only LoRA's A/B and the head get gradients; after training steps the base weights are
    unchanged; the trained parameters round-trip through trainable.safetensors."""
    from ltune import run_files
    from safetensors.torch import load_file

    method, batch = make(family, "peft_lora")
    base = {n: p.detach().clone() for n, p in method.backbone.model.named_parameters() if "lora_" not in n}
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=1e-2)
    method.train()
    for _ in range(3):
        method.training_loss(batch).backward()
        with_grad = {n for n, p in method.named_parameters() if p.grad is not None}
        assert with_grad and all("lora_" in n or n.startswith("head.") for n in with_grad), sorted(with_grad)
        assert any(".lora_B." in n for n in with_grad)
        optimizer.step()
        optimizer.zero_grad()
    after = dict(method.backbone.model.named_parameters())
    assert all(torch.equal(after[n], v) for n, v in base.items())  # the base weights never moved
    assert any(p.abs().sum() > 0 for n, p in method.named_parameters() if ".lora_B." in n)  # B left zero
    scores = method.eval().label_scores(batch)
    run_files.save_parameters(tmp_path / "t.safetensors", method.trainable_state_dict(), {"method": "peft_lora"})
    fresh, _ = make(family, "peft_lora")
    fresh.load_trainable_state_dict(load_file(tmp_path / "t.safetensors"))
    torch.testing.assert_close(fresh.eval().label_scores(batch), scores)


def test_peft_lora_count_is_rank_times_in_plus_out():
    method, _ = make("bert", "peft_lora")
    d, layers, r, k = 32, 2, 8, 3  # query and value, 32 -> 32 each
    assert sum(p.numel() for p in method.parameters() if p.requires_grad) == layers * 2 * r * (d + d) + d * k + k


def test_peft_lora_unknown_target_module_is_one_line():
    backbone = tiny_backbone("llama")
    with pytest.raises(LtuneError, match=r"method.target_modules \['qkv'\] are not modules of this llama model"):
        build_method(method_cfg("peft_lora", target_modules=["qkv"]), backbone, LABEL_TEXTS)

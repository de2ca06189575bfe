import pytest
import torch

from ltune.backbone import Backbone, kv_layout
from ltune.errors import LtuneError
from tests.tiny import FAMILIES, tiny_backbone, tiny_config


def batch_of(backbone, texts):
    encoded = backbone.tokenize(texts)
    return backbone.pad([{k: v[i] for k, v in encoded.items()} for i in range(len(texts))])


def random_prefix(backbone, batch, length=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    shape = (backbone.num_layers, 2, batch, backbone.num_kv_heads, length, backbone.head_dim)
    return torch.randn(shape, generator=g)


def test_kv_layout_follows_key_value_heads_not_attention_heads():
    assert kv_layout(tiny_config("falcon"))[1] == 1  # multi-query
    assert kv_layout(tiny_config("llama"))[1] == 2  # grouped-query, 4 attention heads
    assert kv_layout(tiny_config("bert"))[1] == 4


@pytest.mark.parametrize("family", FAMILIES)
def test_prefix_changes_the_text_states(family):
    backbone = tiny_backbone(family)
    batch = batch_of(backbone, ["a sentence about nothing", "short"])
    plain = backbone.hidden_states(**batch)[0]
    prefixed = backbone.hidden_states(**batch, prefix_kv=random_prefix(backbone, 2))[0]
    assert plain.shape == prefixed.shape
    assert (plain - prefixed).abs().max() > 1e-3


@pytest.mark.parametrize("family", FAMILIES)
def test_masked_prefix_positions_are_ignored(family):
    """A prefix whose mask is all zero leaves states as with a prefix of different content."""
    backbone = tiny_backbone(family)
    batch = batch_of(backbone, ["a sentence about nothing"])
    mask = torch.zeros(1, 3, dtype=torch.long)
    a = backbone.hidden_states(**batch, prefix_kv=random_prefix(backbone, 1, seed=1), prefix_mask=mask)[0]
    b = backbone.hidden_states(**batch, prefix_kv=random_prefix(backbone, 1, seed=2), prefix_mask=mask)[0]
    torch.testing.assert_close(a, b)


def test_deberta_prefix_with_nothing_visible_equals_no_prefix():
    """The DeBERTa patch: relative-position terms cover only real tokens, so a fully masked prefix is a no-op."""
    backbone = tiny_backbone("deberta")
    batch = batch_of(backbone, ["a sentence about nothing", "short"])
    plain = backbone.hidden_states(**batch)[0]
    masked = backbone.hidden_states(**batch, prefix_kv=random_prefix(backbone, 2), prefix_mask=torch.zeros(2, 3))[0]
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(plain[real], masked[real])


@pytest.mark.parametrize("family", FAMILIES)
def test_pooling_ignores_padding(family):
    backbone = tiny_backbone(family)
    alone = batch_of(backbone, ["the cat sat"])
    padded = batch_of(backbone, ["the cat sat", "a much longer sentence that forces several padding positions"])
    for kwargs in ({}, {"prompt": torch.randn(1, 2, backbone.hidden_size)}):
        a = backbone.encode(**alone, **kwargs)
        expanded = {k: v.expand(2, -1, -1) for k, v in kwargs.items()}
        b = backbone.encode(**padded, **expanded)
        torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("pooling,expected", [("cls", [2.0, 2.0]), ("mean", [1.0, 2.0]), ("last", [2.0, 4.0])])
def test_pooling_reads_the_right_positions(pooling, expected):
    """Prompt positions 0-1, text from position 2; mean covers every real position, prompt included."""
    backbone = tiny_backbone("bert")
    backbone.pooling = pooling
    hidden = torch.arange(6, dtype=torch.float).view(1, 6, 1).expand(2, 6, 1)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]])
    pooled = backbone.pool(hidden, mask, text_start=2)[:, 0]
    assert pooled.tolist() == expected


def test_backbone_is_frozen_and_pads_right():
    backbone = tiny_backbone("llama")
    assert not any(p.requires_grad for p in backbone.parameters())
    batch = batch_of(backbone, ["a b c d e", "a"])
    assert batch["attention_mask"][1].tolist()[0] == 1 and batch["attention_mask"][1].tolist()[-1] == 0


def test_position_limit_is_checked():
    backbone = tiny_backbone("bert", max_length=120)  # 128 positions
    backbone.check_fits(8)
    with pytest.raises(LtuneError, match="lower model.max_length to at most 119"):
        backbone.check_fits(9)


def test_unsupported_architecture_is_a_clear_error():
    from transformers import GPT2Config, GPT2Model

    from tests.tiny import tokenizer

    model = GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2))
    with pytest.raises(LtuneError, match="not supported; supported: bert"):
        Backbone(model, tokenizer(), pooling="last")

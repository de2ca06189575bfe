"""What ltune needs to know about each model family, as one table.

Every difference between families that the rest of ltune cares about is a field of
``Architecture``: whether it is a decoder, how a prefix enters attention, how positions are
given, where its key/value head count lives and how many positions it can take. Adding a family
is adding a row (and, for a new prefix entry, a module beside this one).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from ltune.errors import LtuneError


def _kv_heads_default(config) -> int:
    return getattr(config, "num_key_value_heads", None) or config.num_attention_heads


def _kv_heads_falcon(config) -> int:
    # Falcon-7B's multi-query layout caches one head. Falcon-40B's (new_decoder_architecture) cached keys
    # and values expanded to every attention head up to transformers 5.24; from 5.25 its attention caches
    # its num_kv_heads groups and expands them at attention time (repeat_kv), like Llama's.
    if not (config.new_decoder_architecture or not config.multi_query):
        return 1
    from transformers.models.falcon import modeling_falcon

    grouped = hasattr(modeling_falcon, "repeat_kv")  # the newer attention: the cache holds the groups
    return (getattr(config, "num_kv_heads", None) or config.num_attention_heads) if grouped else config.num_attention_heads


def _table_size(config) -> int | None:
    return getattr(config, "max_position_embeddings", None)


def _table_after_padding_index(config) -> int | None:
    """RoBERTa numbers positions from pad_token_id + 1: that many table rows are never used."""
    return config.max_position_embeddings - (config.pad_token_id + 1)


@dataclasses.dataclass(frozen=True)
class Architecture:
    decoder: bool
    #: How a prefix of past keys/values enters attention: "cache" (transformers' Cache API),
    #: "deberta" (ltune's own patch of the disentangled attention; the prefix has no position) or
    #: "attention" (encoders without a cache path whose attention calls transformers' attention
    #: function: ltune's function joins the prefix to the keys/values there; no position either).
    prefix_entry: str
    #: How the model learns token positions: "ids" (from position_ids: an absolute table or rotary
    #: embeddings; ltune passes them so that masked prefix positions are not counted), "mask" (ALiBi
    #: built from the attention mask, which already skips masked positions) or "relative" (DeBERTa).
    positions: str | Callable = "ids"
    #: The position id of the first real token (RoBERTa: pad_token_id + 1).
    first_position: Callable = lambda config: 0
    #: Key/value heads of the attention caches (multi-query and grouped-query models have fewer).
    kv_heads: Callable = _kv_heads_default
    #: How many positions (virtual + text) the model can take; None when unbounded.
    position_limit: Callable = _table_size
    #: The modules peft's LoRA adapts by default (the attention's query and value projections).
    lora_targets: tuple = ("q_proj", "v_proj")
    #: The config key of attention-logit soft-capping, which only eager attention applies (before
    #: transformers 5.2x, sdpa ran Gemma-2 without its cap and said nothing): a model with the key
    #: set runs eager attention.
    softcap_key: str | None = None
    #: How the model's forward takes prebuilt attention masks when its config sets a sliding window
    #: (ltune builds them so that every text position sees the whole prefix, in sliding layers
    #: too; the window still applies between text positions): "per_layer_type" (a mapping
    #: {layer type: mask}), "all_layers" (one mask; every layer slides) or None (no window).
    window_masks: str | None = None
    #: prefix_entry "attention": the class of the modules whose forward calls the attention function.
    attention_module: str | None = None
    #: Whether the model normalises its input embeddings before the first layer (an embedding
    #: LayerNorm: BERT-like encoders, BLOOM), so that the scale of a soft prompt put there does not
    #: reach the layers; a pre-norm decoder adds its input embeddings to the residual stream as given.
    embeddings_normalised: bool = False

    def position_kind(self, config) -> str:
        return self.positions(config) if callable(self.positions) else self.positions


_ENCODER = dict(decoder=False, prefix_entry="cache", lora_targets=("query", "value"), embeddings_normalised=True)
_DECODER = dict(decoder=True, prefix_entry="cache")

ARCHITECTURES: dict[str, Architecture] = {
    "bert": Architecture(**_ENCODER),
    "roberta": Architecture(
        **_ENCODER, first_position=lambda c: c.pad_token_id + 1, position_limit=_table_after_padding_index
    ),
    "xlm-roberta": Architecture(
        **_ENCODER, first_position=lambda c: c.pad_token_id + 1, position_limit=_table_after_padding_index
    ),
    "deberta-v2": Architecture(decoder=False, prefix_entry="deberta", positions="relative",
                               lora_targets=("query_proj", "value_proj"), embeddings_normalised=True),
    "falcon": Architecture(
        **_DECODER, positions=lambda c: "mask" if c.alibi else "ids", kv_heads=_kv_heads_falcon,
        position_limit=lambda c: None if c.alibi else _table_size(c), lora_targets=("query_key_value",),
    ),
    "bloom": Architecture(**_DECODER, positions="mask", position_limit=lambda c: None,
                          lora_targets=("query_key_value",), embeddings_normalised=True),  # word_embeddings_layernorm
    "llama": Architecture(**_DECODER),  # Llama 1-3.x (rope scaling lives in the rotary embedding), SmolLM2
    "mistral": Architecture(**_DECODER, window_masks="all_layers"),
    "mixtral": Architecture(**_DECODER, window_masks="all_layers"),  # sparse experts: the MLP only
    "qwen2": Architecture(**_DECODER, window_masks="per_layer_type"),
    "qwen3": Architecture(**_DECODER, window_masks="per_layer_type"),  # q/k norms inside attention
    "qwen3_moe": Architecture(**_DECODER, window_masks="all_layers"),
    "gemma": Architecture(**_DECODER),
    "gemma2": Architecture(**_DECODER, window_masks="per_layer_type", softcap_key="attn_logit_softcapping"),
    "gemma3_text": Architecture(**_DECODER, window_masks="per_layer_type", softcap_key="attn_logit_softcapping"),
    "phi3": Architecture(**_DECODER, window_masks="all_layers", lora_targets=("qkv_proj",)),
    "olmo2": Architecture(**_DECODER),
    "smollm3": Architecture(**_DECODER, window_masks="per_layer_type"),
    "gpt_neox": Architecture(**_DECODER, lora_targets=("query_key_value",)),
    "electra": Architecture(**_ENCODER),
    "distilbert": Architecture(decoder=False, prefix_entry="attention", attention_module="DistilBertSelfAttention",
                               lora_targets=("q_lin", "v_lin"), embeddings_normalised=True),
    # Local (sliding-window) and global layers, rotary positions, a fused Wqkv: no cache path.
    "modernbert": Architecture(decoder=False, prefix_entry="attention", attention_module="ModernBertAttention",
                               lora_targets=("Wqkv",), embeddings_normalised=True),
}


def architecture_of(config) -> Architecture:
    if config.model_type not in ARCHITECTURES:
        raise LtuneError(
            f"model type '{config.model_type}' is not supported; supported: {', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[config.model_type]


def sliding_layer_types(config) -> set[str]:
    """The layer types of ``config`` whose attention slides over a window (empty: none)."""
    if getattr(config, "sliding_window", None) is None:
        return set()
    types = getattr(config, "layer_types", None)
    return {t for t in types if t == "sliding_attention"} if types else {"sliding_attention"}


def kv_layout(config) -> tuple[int, int, int]:
    """(layers, key/value heads, head dim) of the attention caches of ``config``."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, architecture_of(config).kv_heads(config), head_dim

"""Prefix keys/values for encoders without a cache path whose attention calls transformers'
attention function (ModernBERT, DistilBERT).

Within ``prefix(...)`` the model runs an attention implementation of ltune's own, registered
beside the one it has ("ltune_prefix+sdpa", "ltune_prefix+eager"): each attention module's keys
and values are ``[prefix ; text]`` (the prefix after any rotary embedding of the text, so it has
no position, as in DeBERTa), and the mask gains the prefix's columns: every text position sees
every real prefix position, in local (sliding-window) layers too, while the window still applies
between text positions. Outside the block the model runs its own implementation, untouched.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from ltune.errors import LtuneError

PREFIX = "ltune_prefix+"
#: The attention implementations ltune's function can stand in for (boolean or additive masks).
WRAPPABLE = ("sdpa", "eager")


def install(model: nn.Module, attention_class: str) -> None:
    """Number the attention modules of ``model`` (the instances of ``attention_class``, whose
    forward calls the attention function) and register ltune's functions (idempotent)."""
    config = model.config
    implementation = config._attn_implementation
    if implementation not in WRAPPABLE:
        raise LtuneError(f"prefix methods on {config.model_type} need model.attn_implementation sdpa or eager "
                         f"(ltune joins the prefix inside the attention function), not {implementation}")
    name = PREFIX + implementation
    if name not in ALL_ATTENTION_FUNCTIONS:
        AttentionInterface.register(name, _with_prefix(implementation))
        AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[implementation])
    modules = [m for m in model.modules() if type(m).__name__ == attention_class]
    if len(modules) != config.num_hidden_layers:
        raise LtuneError(f"found {len(modules)} {attention_class} modules in this {config.model_type} model, "
                         f"expected {config.num_hidden_layers}; prefix methods cannot run on it")
    for layer, module in enumerate(modules):
        module._ltune_layer = layer
        module._ltune_prefix = None


@contextlib.contextmanager
def prefix(model: nn.Module, prefix_kv: torch.Tensor, prefix_mask: torch.Tensor):
    """Within the block, layer i attends to ``prefix_kv[i]`` (layers, 2, batch, heads, P, head dim)."""
    config = model.config
    implementation = config._attn_implementation
    modules = [m for m in model.modules() if hasattr(m, "_ltune_layer")]
    try:
        for module in modules:
            i = module._ltune_layer
            module._ltune_prefix = (prefix_kv[i, 0], prefix_kv[i, 1], prefix_mask.bool())
        config._attn_implementation = PREFIX + implementation
        yield
    finally:
        config._attn_implementation = implementation
        for module in modules:
            module._ltune_prefix = None


def _eager(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Plain attention with an additive mask (transformers has no shared eager function to wrap)."""
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def _with_prefix(base_name: str):
    base = _eager if base_name == "eager" else ALL_ATTENTION_FUNCTIONS[base_name]

    def attention(module, query, key, value, attention_mask, **kwargs):
        joined = getattr(module, "_ltune_prefix", None)
        if joined is None:
            return base(module, query, key, value, attention_mask, **kwargs)
        prefix_keys, prefix_values, visible = joined
        text_keys = key.shape[2]
        key = torch.cat([prefix_keys.to(key.dtype), key], dim=2)
        value = torch.cat([prefix_values.to(value.dtype), value], dim=2)
        mask = joined_mask(attention_mask, visible, query, text_keys, additive=base_name == "eager")
        return base(module, query, key, value, mask, **kwargs)

    return attention


def joined_mask(text_mask, prefix_visible, query, text_keys: int, additive: bool) -> torch.Tensor:
    """The text's 4D mask (boolean, additive or None = all visible) with the prefix's columns in
    front, in the form the wrapped function takes (additive for eager, boolean otherwise)."""
    batch, queries = query.shape[0], query.shape[2]
    if text_mask is None:
        allowed = torch.ones(batch, 1, queries, text_keys, dtype=torch.bool, device=query.device)
    elif text_mask.dtype == torch.bool:
        allowed = text_mask
    else:  # additive: 0 where visible, a large negative number where not
        allowed = text_mask > torch.finfo(text_mask.dtype).min / 2
    allowed = allowed.expand(batch, -1, queries, text_keys)
    columns = prefix_visible[:, None, None, :].expand(batch, allowed.shape[1], queries, -1)
    allowed = torch.cat([columns, allowed], dim=-1)
    if not additive:
        return allowed
    zero = torch.zeros((), dtype=query.dtype, device=query.device)
    return torch.where(allowed, zero, torch.finfo(query.dtype).min)

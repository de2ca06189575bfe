"""Prefix keys/values for DeBERTa-v2/v3, whose disentangled attention has no cache path.

Each ``DisentangledSelfAttention`` gets a forward that, when a prefix is set, scores
queries against ``[prefix keys ; text keys]``: content-to-content scores cover prefix
and text, the relative-position terms (c2p, p2c) cover the real tokens only, so the
prefix has no position. With no prefix set, the module's own forward runs unchanged.
"""

from __future__ import annotations

import contextlib
import types

import torch
from torch import nn


def install(model: nn.Module) -> None:
    """Patch every disentangled self-attention of a DeBERTa-v2 ``model`` (idempotent)."""
    for layer_idx, layer in enumerate(model.encoder.layer):
        attention = layer.attention.self
        if getattr(attention, "_ltune_installed", False):
            continue
        attention._ltune_installed = True
        attention._ltune_layer = layer_idx
        attention._ltune_prefix = None
        attention._ltune_original_forward = attention.forward
        attention.forward = types.MethodType(_forward_with_prefix, attention)


@contextlib.contextmanager
def prefix(model: nn.Module, prefix_kv: torch.Tensor, prefix_mask: torch.Tensor):
    """Within the block, layer i attends to ``prefix_kv[i]``.

    prefix_kv: (layers, 2, batch, heads, P, head_dim); prefix_mask: (batch, P), 1 = attend.
    """
    attentions = [layer.attention.self for layer in model.encoder.layer]
    try:
        for attention in attentions:
            i = attention._ltune_layer
            attention._ltune_prefix = (prefix_kv[i, 0], prefix_kv[i, 1], prefix_mask)
        yield
    finally:
        for attention in attentions:
            attention._ltune_prefix = None


def _forward_with_prefix(
    self,
    hidden_states,
    attention_mask,
    output_attentions=False,
    query_states=None,
    relative_pos=None,
    rel_embeddings=None,
):
    if self._ltune_prefix is None:
        return self._ltune_original_forward(
            hidden_states,
            attention_mask,
            output_attentions=output_attentions,
            query_states=query_states,
            relative_pos=relative_pos,
            rel_embeddings=rel_embeddings,
        )
    prefix_keys, prefix_values, prefix_mask = self._ltune_prefix
    if query_states is None:
        query_states = hidden_states
    heads = self.num_attention_heads
    batch, text_len = hidden_states.shape[:2]
    prefix_len = prefix_keys.shape[-2]

    query = self.transpose_for_scores(self.query_proj(query_states), heads)  # (B*H, T, hd)
    key = self.transpose_for_scores(self.key_proj(hidden_states), heads)
    value = self.transpose_for_scores(self.value_proj(hidden_states), heads)
    prefix_keys = prefix_keys.to(key.dtype).reshape(batch * heads, prefix_len, -1)
    prefix_values = prefix_values.to(value.dtype).reshape(batch * heads, prefix_len, -1)

    scale_factor = 1 + ("c2p" in self.pos_att_type) + ("p2c" in self.pos_att_type)
    scale = torch.sqrt(torch.tensor(query.size(-1), dtype=torch.float) * scale_factor).to(query.dtype)
    scores = torch.bmm(query, torch.cat([prefix_keys, key], dim=1).transpose(-1, -2) / scale)
    if self.relative_attention:
        relative = self.disentangled_attention_bias(
            query, key, relative_pos, self.pos_dropout(rel_embeddings), scale_factor
        )
        scores = torch.cat([scores[..., :prefix_len], scores[..., prefix_len:] + relative], dim=-1)
    scores = scores.view(batch, heads, text_len, prefix_len + text_len)

    text_mask = attention_mask.bool()  # (B, 1, T, T) from the encoder
    if text_mask.dim() == 2:
        text_mask = (text_mask[:, None, None, :] & text_mask[:, None, :, None])
    prefix_visible = prefix_mask.bool()[:, None, None, :].expand(batch, 1, text_len, prefix_len)
    visible = torch.cat([prefix_visible, text_mask.expand(batch, 1, text_len, text_len)], dim=-1)
    scores = scores.masked_fill(~visible, torch.finfo(scores.dtype).min)
    probs = self.dropout(nn.functional.softmax(scores, dim=-1))

    values = torch.cat([prefix_values, value], dim=1)  # (B*H, P+T, hd)
    context = torch.bmm(probs.view(batch * heads, text_len, prefix_len + text_len), values)
    context = context.view(batch, heads, text_len, -1).permute(0, 2, 1, 3).reshape(batch, text_len, -1)
    return (context, probs if output_attentions else None)

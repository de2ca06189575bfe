"""Prefix tuning: P learned virtual positions of keys/values in every layer, shared by all
classes, and a K-way linear head (with bias) on the pooled output.

Trainable: P*m*2*kv + d*K + K; with the MLP reparameterisation
P*d + (d*h + h) + (h*m*2*kv + m*2*kv) + d*K + K.
The prefix starts random (N(0, 1)), or with method.init=text as the model's own keys/values of the
first P tokens of method.init_text.
"""

from __future__ import annotations

import torch
from torch import nn

from ltune.backbone import Backbone
from ltune.errors import LtuneError
from ltune.methods.base import KWayMethod
from ltune.methods.prefix.config import PrefixInit


class Prefix(KWayMethod):
    def __init__(self, backbone: Backbone, config, label_texts):
        super().__init__(backbone, config, label_texts)
        b, p = backbone, config.num_virtual_tokens
        width = b.num_layers * 2 * b.kv_dim
        if config.reparameterize:
            self.prefix_embedding = nn.Parameter(torch.randn(p, b.hidden_size))
            self.prefix_mlp = nn.Sequential(
                nn.Linear(b.hidden_size, config.reparam_hidden), nn.Tanh(), nn.Linear(config.reparam_hidden, width)
            )
        elif config.init == PrefixInit.text:
            self.prefix = nn.Parameter(self.text_prefix(config.init_text, p).reshape(p, width))
        else:
            self.prefix = nn.Parameter(torch.randn(p, width))
        self.add_head()

    def text_prefix(self, text: str, length: int) -> torch.Tensor:
        """The model's own keys/values of the first ``length`` tokens of ``text``, laid out as the
        prefix parameter: (P, layers, 2, kv heads, head dim)."""
        batch = self.backbone.label_batch([text])  # no special tokens, as label texts
        if batch["input_ids"].shape[1] < length:
            raise LtuneError(f"method.init_text has {batch['input_ids'].shape[1]} tokens under this model's tokenizer, "
                             f"fewer than method.num_virtual_tokens={length}; give a longer text or fewer virtual tokens")
        batch = {key: value[:, :length].to(self.backbone.device) for key, value in batch.items()}
        kv = self.backbone.text_kv(batch)[:, :, 0]  # (layers, 2, kv heads, P, head dim)
        return kv.permute(3, 0, 1, 2, 4).cpu()

    def prefix_kv(self, batch_size: int) -> torch.Tensor:
        b, p = self.backbone, self.config.num_virtual_tokens
        flat = self.prefix_mlp(self.prefix_embedding) if self.config.reparameterize else self.prefix
        kv = flat.view(p, b.num_layers, 2, b.num_kv_heads, b.head_dim).permute(1, 2, 3, 0, 4)
        return kv.unsqueeze(2).expand(-1, -1, batch_size, -1, -1, -1)

    def label_scores(self, batch):
        size = batch["input_ids"].shape[0]
        pooled = self.backbone.encode(
            batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"), prefix_kv=self.prefix_kv(size)
        )
        return self.head(pooled)

    def paper_trainable_params(self) -> int:
        b, p, k = self.backbone, self.config.num_virtual_tokens, self.num_labels
        width = b.num_layers * 2 * b.kv_dim
        head = b.hidden_size * k + k
        if self.config.reparameterize:
            h = self.config.reparam_hidden
            return p * b.hidden_size + (b.hidden_size * h + h) + (h * width + width) + head
        return p * width + head

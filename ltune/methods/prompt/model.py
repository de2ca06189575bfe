"""Prompt tuning: P learned input embeddings in front of the text's word embeddings,
shared by all classes, and a K-way linear head (with bias) on the pooled output.

Trainable: P*d + d*K + K.
"""

from __future__ import annotations

import torch
from torch import nn

from ltune.backbone import Backbone
from ltune.errors import LtuneError
from ltune.methods.base import TuningMethod


class Prompt(TuningMethod):
    def __init__(self, backbone: Backbone, config, label_texts):
        super().__init__(backbone, config, label_texts)
        p, d = config.num_virtual_tokens, backbone.hidden_size
        if config.init == "vocab":
            table = backbone.model.get_input_embeddings().weight
            rows = torch.randint(0, table.shape[0], (p,))
            initial = table[rows].detach().float().clone()
        elif config.init == "random":
            initial = torch.randn(p, d) * 0.02
        else:
            raise LtuneError(f"unknown method.init '{config.init}'; valid: vocab, random")
        self.prompt = nn.Parameter(initial)
        self.head = nn.Linear(d, self.num_labels)
        backbone.check_fits(p)

    def num_virtual_tokens(self) -> int:
        return self.config.num_virtual_tokens

    def label_scores(self, batch):
        size = batch["input_ids"].shape[0]
        pooled = self.backbone.encode(
            batch["input_ids"],
            batch["attention_mask"],
            batch.get("token_type_ids"),
            prompt=self.prompt.unsqueeze(0).expand(size, -1, -1),
        )
        return self.head(pooled)

    def training_loss(self, batch):
        return nn.functional.cross_entropy(self.label_scores(batch), batch["labels"])

    def paper_trainable_params(self) -> int:
        p, d, k = self.config.num_virtual_tokens, self.backbone.hidden_size, self.num_labels
        return p * d + d * k + k

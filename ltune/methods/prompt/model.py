"""Prompt tuning: P learned input embeddings in front of the text's word embeddings,
shared by all classes, and a K-way linear head (with bias) on the pooled output.

Trainable: P*d + d*K + K.
"""

from __future__ import annotations

import torch
from torch import nn

from ltune.backbone import Backbone
from ltune.methods.base import KWayMethod


class Prompt(KWayMethod):
    def __init__(self, backbone: Backbone, config, label_texts):
        super().__init__(backbone, config, label_texts)
        p, d = config.num_virtual_tokens, backbone.embedding_width  # = hidden size but in ELECTRA-small
        if config.init == "vocab":
            table = backbone.model.get_input_embeddings()
            rows = torch.randint(0, table.num_embeddings, (p,))
            # As the model reads a word (Gemma scales its table by sqrt(d) on the way in).
            initial = backbone.embed(rows.to(table.weight.device)).detach().float().cpu().clone()
        else:  # "random"
            initial = torch.randn(p, d) * 0.02
        self.prompt = nn.Parameter(initial)
        self.add_head()

    def label_scores(self, batch):
        size = batch["input_ids"].shape[0]
        pooled = self.backbone.encode(
            batch["input_ids"],
            batch["attention_mask"],
            batch.get("token_type_ids"),
            prompt=self.prompt.unsqueeze(0).expand(size, -1, -1),
        )
        return self.head(pooled)

    def paper_trainable_params(self) -> int:
        p, d, k = self.config.num_virtual_tokens, self.backbone.hidden_size, self.num_labels
        return p * self.backbone.embedding_width + d * k + k

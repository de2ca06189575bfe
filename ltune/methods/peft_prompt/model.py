"""peft's PromptTuning (feature-extraction task) in front of the frozen model, read with the
same pooling and the same K-way head as our ``prompt`` method, so the two differ only in whose
code puts the prompt in front of the text. Trainable: P*d + d*K + K.
"""

from __future__ import annotations

import torch
from torch import nn

from ltune.backbone import Backbone
from ltune.methods.base import KWayMethod


class PeftPrompt(KWayMethod):
    modifies_backbone = True  # peft wraps the model (conservatively: never reused afterwards)
    def __init__(self, backbone: Backbone, config, label_texts):
        super().__init__(backbone, config, label_texts)
        from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

        peft_config = PromptTuningConfig(
            task_type=TaskType.FEATURE_EXTRACTION,
            num_virtual_tokens=config.num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit[str(config.init)],
            # peft reads these from the config's keys, which DistilBERT names otherwise (n_heads), and
            # takes hidden_size for the prompt width (ELECTRA-small's word embeddings are narrower).
            token_dim=backbone.embedding_width, num_layers=backbone.num_layers,
            num_attention_heads=backbone.model.config.num_attention_heads,
        )
        self.peft_model = get_peft_model(backbone.model, peft_config)
        self.add_head()

    @property
    def prompt_embedding(self) -> nn.Embedding:
        return self.peft_model.prompt_encoder[self.peft_model.active_adapter].embedding

    def label_scores(self, batch):
        p = self.config.num_virtual_tokens
        kwargs = {"token_type_ids": batch["token_type_ids"]} if "token_type_ids" in batch else {}
        hidden = self.peft_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs)
        mask = torch.cat([batch["attention_mask"].new_ones(batch["attention_mask"].shape[0], p), batch["attention_mask"]], 1)
        return self.head(self.backbone.pool(hidden.last_hidden_state, mask, text_start=p))

    def paper_trainable_params(self) -> int:
        p, d, k = self.config.num_virtual_tokens, self.backbone.hidden_size, self.num_labels
        return p * self.backbone.embedding_width + d * k + k

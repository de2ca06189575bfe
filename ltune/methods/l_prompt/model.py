"""L-prompt: the label text becomes the soft prompt.

e(y_k) = G h_k (G: d x d, no bias) gives l prompt vectors, put in front of the text's
word embeddings from the frozen table; padded label positions are masked out. The
2-way head on the pooled text output scores the pair (x, y_k).
Trainable: d*d + 2d, as in the paper.
"""

from __future__ import annotations

from torch import nn

from ltune.backbone import Backbone
from ltune.methods.base import LabelConditioned


class LPrompt(LabelConditioned):
    def __init__(self, backbone: Backbone, config, label_texts):
        super().__init__(backbone, config, label_texts)
        d = backbone.hidden_size
        self.prompt_map = nn.Linear(d, backbone.embedding_width, bias=False)  # G (d x d but in ELECTRA-small)
        if config.init == "identity":
            nn.init.eye_(self.prompt_map.weight)
        backbone.check_fits(self.label_length)

    def pair_logits(self, batch, label_ids):
        prompts = self.prompt_map(self.current_label_states())  # (K, l, d)
        pooled = self.backbone.encode(
            batch["input_ids"],
            batch["attention_mask"],
            batch.get("token_type_ids"),
            prompt=prompts[label_ids],
            prompt_mask=self.label_mask[label_ids],
        )
        return self._head_logit(pooled)

    def paper_trainable_params(self) -> int:
        d = self.backbone.hidden_size
        return d * self.backbone.embedding_width + 2 * d + (2 if self.config.head_bias else 0)

"""L-prompt: the label text becomes the soft prompt.

e(y_k) = G h_k (G: d x d, no bias) gives l prompt vectors, put in front of the text's
word embeddings from the frozen table; padded label positions are masked out. The
2-way head on the pooled text output scores the pair (x, y_k).
Trainable: d*d + 2d, as in the paper.

G starts as the identity (the prompt is the label's own last states), random, or with
method.init=text fitted so that each label's prompt is its label text's own word embeddings:
the pair is then first read exactly as "label text, then text". A pre-norm decoder adds its
input embeddings to the residual stream unnormalised, and its last states are an order of
magnitude larger than its word embeddings (SmolLM2-135M, label tokens: mean norms 43.9 against
2.6), so the identity start feeds it inputs unlike any word; an encoder's embedding LayerNorm
hides that.
"""

from __future__ import annotations

import torch
from torch import nn

from ltune.backbone import Backbone
from ltune.methods.base import LabelConditioned

#: An identity start whose prompt vectors are this many times larger (or smaller) than the word
#: embeddings they stand in for is flagged on models that do not normalise their input embeddings.
SCALE_MISMATCH = 3.0


class LPrompt(LabelConditioned):
    def __init__(self, backbone: Backbone, config, label_texts):
        super().__init__(backbone, config, label_texts)
        d = backbone.hidden_size
        self.prompt_map = nn.Linear(d, backbone.embedding_width, bias=False)  # G (d x d but in ELECTRA-small)
        if config.init == "identity":
            nn.init.eye_(self.prompt_map.weight)
        elif config.init == "text":
            self.fit_map_to_label_words()
        backbone.check_fits(self.label_length)

    @torch.no_grad()
    def fit_map_to_label_words(self) -> None:
        """Set G to the minimum-norm least-squares solution of "G h = the word embedding of that
        token" over every real label token (exact when those states are linearly independent; a
        causal decoder's shared first words give equal states with equal targets, which agree)."""
        real = self.label_mask
        states = self.label_states[real].double()  # (real label tokens, d)
        words = self.backbone.embed(self.label_ids)[real].double()  # (real label tokens, embedding width)
        self.prompt_map.weight.copy_((torch.linalg.pinv(states) @ words).T)

    def prompt_and_word_norms(self) -> tuple[float, float]:
        """Mean norms of the label prompts' vectors and of the label tokens' word embeddings (real tokens)."""
        with torch.no_grad():
            real = self.label_mask
            prompts = self.prompt_map(self.label_states)[real]
            words = self.backbone.embed(self.label_ids)[real].float()
        return float(prompts.norm(dim=-1).mean()), float(words.norm(dim=-1).mean())

    def start_warnings(self) -> list[str]:
        found = super().start_warnings()
        if self.config.init != "identity" or self.backbone.arch.embeddings_normalised:
            return found
        prompt, words = self.prompt_and_word_norms()
        if 1 / SCALE_MISMATCH <= prompt / words <= SCALE_MISMATCH:
            return found
        return found + [f"ltune: warning: L-prompt's identity start puts the label texts' last states (mean norm {prompt:.1f}) "
                f"where word embeddings (mean norm {words:.1f}) go, and this model adds its input embeddings to its "
                f"layers unnormalised, so the frozen model first reads the pairs unlike any text; method.init=text "
                f"starts each label's prompt as its label text's own word embeddings "
                f"(studies/offline_table_smollm2/PLAN.md)"]

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

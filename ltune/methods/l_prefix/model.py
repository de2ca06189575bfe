"""L-prefix: the label text becomes every layer's past keys and values.

For label k with last hidden states h_k (l x d) from the frozen model:
  s_k = softmax_t(w . h_k[t])          self-attention pooling F, w in R^d, no bias
  (K_k, V_k) = reshape(Z s_k)          Z: R^l -> R^(l x m x 2 x kv), no bias
The frozen model reads text x with (K_k, V_k) in front of every layer's keys/values;
the 2-way head on the pooled output scores the pair (x, y_k).
Trainable: d + 2 l^2 m kv + 2d, which is the paper's 2 l^2 m d + 3d when kv = d
(multi-head attention); grouped or multi-query models have kv < d.
Z starts random, or with method.init=text fitted so that (K_k, V_k) are the frozen model's
own keys/values of label text k (the pair is then first read as "label text, then text").
"""

from __future__ import annotations

import torch
from torch import nn

from ltune.backbone import Backbone
from ltune.errors import LtuneError
from ltune.methods.base import LabelConditioned
from ltune.methods.l_prefix.config import LPrefixInit


class LPrefix(LabelConditioned):
    def __init__(self, backbone: Backbone, config, label_texts):
        super().__init__(backbone, config, label_texts)
        l, d = self.label_length, backbone.hidden_size
        width = backbone.num_layers * 2 * backbone.kv_dim
        if config.z_input == "states":
            # Ablation (the reference code's pooling=False branch): no F; Z maps each label
            # token's state to that position's keys/values in every layer.
            self.transform = nn.Linear(d, width, bias=False)
        else:
            if config.pool_softmax and bool((self.label_mask.sum(1) == 1).all()):
                raise LtuneError(
                    "every label text is a single token, so softmax pooling gives all labels the same prefix; "
                    "use longer label texts (data.label_texts) or method.pool_softmax=false"
                )
            self.pool_weight = nn.Parameter(torch.empty(d))  # w of F
            nn.init.normal_(self.pool_weight, std=d**-0.5)
            self.transform = nn.Linear(l, l * width, bias=False)  # Z
        backbone.check_fits(l)
        if config.init == LPrefixInit.text:
            self.fit_transform_to_label_kv()

    @torch.no_grad()
    def fit_transform_to_label_kv(self) -> None:
        """Set Z to the minimum-norm least-squares solution of "label k's prefix = the frozen
        model's own keys/values of label text k" over the K labels (exact when Z's K inputs are
        linearly independent). Only real label positions count under z_input=states."""
        b = self.backbone
        kv = b.text_kv({"input_ids": self.label_ids, "attention_mask": self.label_mask.long()})  # (m, 2, K, kv, l, hd)
        if self.config.z_input == "states":
            inputs = self.current_label_states()[self.label_mask]  # (real label tokens, d)
            targets = kv.permute(2, 4, 0, 1, 3, 5)[self.label_mask].flatten(1)  # (real label tokens, m * 2 * kv)
        else:
            inputs = self.pooled_label_scores()  # (K, l)
            targets = kv.permute(2, 0, 1, 4, 3, 5).flatten(1)  # (K, m * 2 * l * kv): label_prefixes' layout
        solution = torch.linalg.pinv(inputs.float()) @ targets  # (inputs' width, outputs)
        self.transform.weight.copy_(solution.T)

    def pooled_label_scores(self, states: torch.Tensor | None = None) -> torch.Tensor:
        """F(h_k) for every label: (K, l) pooling weights (zero on label padding)."""
        states = self.current_label_states() if states is None else states
        scores = states @ self.pool_weight
        if self.config.pool_softmax:
            return scores.masked_fill(~self.label_mask, float("-inf")).softmax(-1)
        return scores * self.label_mask

    def label_prefixes(self) -> torch.Tensor:
        """Per-label past keys/values, (layers, 2, K, kv heads, l, head dim)."""
        b = self.backbone
        k, l = self.num_labels, self.label_length
        if self.config.z_input == "states":
            kv = self.transform(self.current_label_states())  # (K, l, layers * 2 * kv)
            kv = kv.view(k, l, b.num_layers, 2, b.num_kv_heads, b.head_dim)
            return kv.permute(2, 3, 0, 4, 1, 5)
        kv = self.transform(self.pooled_label_scores())
        kv = kv.view(k, b.num_layers, 2, l, b.num_kv_heads, b.head_dim)
        return kv.permute(1, 2, 0, 4, 3, 5)

    @torch.no_grad()
    def identical_label_pairs(self) -> list[tuple[int, int]]:
        """Label pairs (i < j) whose prefixes and prefix masks are the same: the frozen model then
        reads every text identically under both labels, so their scores tie on every text. With
        the paper's Z over the pooling weights this happens to label texts of the same token
        length once the softmax puts (almost) all weight on the same position."""
        from ltune.evaluation import TIE_ATOL, TIE_RTOL

        prefixes = self.label_prefixes().transpose(0, 2).reshape(self.num_labels, -1).float()
        return [(i, j) for i in range(self.num_labels) for j in range(i + 1, self.num_labels)
                if torch.equal(self.label_mask[i], self.label_mask[j])
                and torch.allclose(prefixes[i], prefixes[j], TIE_RTOL, TIE_ATOL)]

    def pair_logits(self, batch, label_ids):
        prefix_kv = self.label_prefixes()[:, :, label_ids]
        pooled = self.backbone.encode(
            batch["input_ids"],
            batch["attention_mask"],
            batch.get("token_type_ids"),
            prefix_kv=prefix_kv,
            prefix_mask=self.label_mask[label_ids],
        )
        return self._head_logit(pooled)

    def paper_trainable_params(self) -> int:
        b, l = self.backbone, self.label_length
        head = 2 * b.hidden_size + (2 if self.config.head_bias else 0)
        if self.config.z_input == "states":  # the ablation: Z is d -> m * 2 * kv, no F
            return b.hidden_size * b.num_layers * 2 * b.kv_dim + head
        return b.hidden_size + 2 * l * l * b.num_layers * b.kv_dim + head

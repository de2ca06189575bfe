"""The small interface the trainer calls, shared by the four tuning methods.

A method owns its trainable maps and head, and turns a batch of texts into
label scores: ``label_scores(batch) -> (batch, K)``; the prediction is the argmax.
Training goes through ``training_loss(batch)``.
"""

from __future__ import annotations

import abc

import torch
from torch import nn

from ltune.backbone import Backbone
from ltune.errors import LtuneError


class TuningMethod(nn.Module, metaclass=abc.ABCMeta):
    #: L-methods train on (text, label) pairs: the collator adds ``pair_labels`` and ``pair_targets``.
    pair_training: bool = False
    #: Whether the method can score label texts it was not trained on (``ltune predict labels=``).
    supports_open_labels: bool = False
    #: Whether building the method changes the backbone's model (wraps or adapts it): such a
    #: backbone is never reused by a later run in the same process.
    modifies_backbone: bool = False

    def __init__(self, backbone: Backbone, config, label_texts: list[str]):
        super().__init__()
        self.backbone = backbone
        self.config = config
        self.label_texts = list(label_texts)
        self.num_labels = len(label_texts)
        if self.num_labels < 2:
            raise LtuneError("a classification task needs at least two labels")

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss: ``forward`` is what DistributedDataParallel wraps and syncs."""
        return self.training_loss(batch)

    @abc.abstractmethod
    def label_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores (batch, K) of every label for every text; higher is more likely."""

    @abc.abstractmethod
    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss of one training batch."""

    def eval_loss(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Loss on held-out data, from the scores ``label_scores`` returned."""
        return nn.functional.cross_entropy(scores, labels)

    @abc.abstractmethod
    def paper_trainable_params(self) -> int:
        """The trainable-parameter count the paper's formula gives for this configuration."""

    def start_warnings(self) -> list[str]:
        """Lines on what this start is known to do badly on this model, printed when training starts."""
        return []

    def reads_per_training_row(self) -> int:
        """How many times a training step passes each row of its batch through the model (what the
        run's samples and tokens per second count)."""
        return 1

    def optimizer_groups(self, lr: float) -> list[dict]:
        """The trainable parameters as optimizer groups, each with its learning rate."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only what training changed: the method's maps and head, never the backbone."""
        return {name: p.detach().cpu().contiguous() for name, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        expected = {name for name, p in self.named_parameters() if p.requires_grad}
        if set(state) != expected:
            missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
            raise LtuneError(f"saved parameters do not match this method (missing {missing}, unexpected {unexpected})")
        params = dict(self.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)



class KWayMethod(TuningMethod):
    """Prefix and prompt tuning (ours and peft's): P virtual positions shared by all classes, read
    by a K-way linear head (with bias) on the pooled output, trained with cross-entropy."""

    def add_head(self) -> None:
        """Called by each subclass after its own parameters (keeps the initialisation order)."""
        self.head = nn.Linear(self.backbone.hidden_size, self.num_labels)
        self.backbone.check_fits(getattr(self.config, "num_virtual_tokens", 0))

    def training_loss(self, batch):
        return nn.functional.cross_entropy(self.label_scores(batch), batch["labels"])


class LabelConditioned(TuningMethod):
    """Shared by L-prefix and L-prompt: a binary pair scorer over cached label encodings.

    The label texts are encoded once by the frozen model (eval mode, no grad) and kept
    as buffers; ``config.reencode_labels=true`` re-encodes them on every training
    step as the reference code does (an ablation for benchmarks, never the default).
    The head C is a 2-way linear map without bias on the pooled output (2*d parameters; the
    ``head_bias`` ablation adds one); the pair logit is the difference of its two outputs.
    """

    pair_training = True
    supports_open_labels = True

    def __init__(self, backbone: Backbone, config, label_texts: list[str]):
        super().__init__(backbone, config, label_texts)
        device = backbone.device
        label_batch = {k: v.to(device) for k, v in backbone.label_batch(self.label_texts, config.label_length).items()}
        self.register_buffer("label_ids", label_batch["input_ids"], persistent=False)  # (K, l)
        self.register_buffer("label_mask", label_batch["attention_mask"].bool(), persistent=False)  # (K, l)
        with backbone.frozen_reading():
            states = backbone.encode_label_batch(label_batch)
        self.register_buffer("label_states", states, persistent=False)  # (K, l, d)
        self.head = nn.Linear(backbone.hidden_size, 2, bias=config.head_bias)

    @property
    def label_length(self) -> int:
        return self.label_states.shape[1]

    def start_warnings(self) -> list[str]:
        """On a decoder-only model, a warning when the label texts share their first tokens: a causal
        model gives those positions the same states for every label, so fewer positions (often one)
        tell the labels apart."""
        from ltune.data.label_texts import shared_first_tokens

        shared = shared_first_tokens(self.label_ids, self.label_mask)
        if not self.backbone.arch.decoder or not shared or self.num_labels < 2:
            return []
        words = self.backbone.tokenizer.decode(self.label_ids[0, :shared].tolist()).strip()
        shortest = int(self.label_mask.sum(dim=1).min())
        return [f"ltune: warning: the label texts share their first {shared} tokens ('{words}'); a decoder-only model "
                f"reads each position from the ones before it, so it gives those positions the same states for every "
                f"label and only {max(shortest - shared, 0)} position(s) of the shortest text tell the labels apart. "
                f"Put the words that differ first: data.label_text_kind=label_first (or label texts that differ from "
                f"their first word)"]

    def current_label_states(self) -> torch.Tensor:
        """The cached label states; re-encoded (train mode, with grad) only under the ablation switch."""
        if self.training and self.config.reencode_labels:
            return self.backbone.encode_label_batch({"input_ids": self.label_ids, "attention_mask": self.label_mask.long()})
        return self.label_states

    @abc.abstractmethod
    def pair_logits(self, batch: dict[str, torch.Tensor], label_ids: torch.Tensor) -> torch.Tensor:
        """Logit that label ``label_ids[i]`` is right for text i, shape (batch,)."""

    def optimizer_groups(self, lr: float) -> list[dict]:
        """The label maps at ``lr * config.map_lr_scale``, the head at ``lr`` (one group when equal)."""
        scale = self.config.map_lr_scale
        if scale == 1:
            return super().optimizer_groups(lr)
        head = [p for p in self.head.parameters() if p.requires_grad]
        maps = [p for p in self.parameters() if p.requires_grad and all(p is not h for h in head)]
        return [{"params": maps, "lr": lr * scale}, {"params": head, "lr": lr}]

    def _head_logit(self, pooled: torch.Tensor) -> torch.Tensor:
        two = self.head(pooled)
        return two[:, 1] - two[:, 0]

    def label_scores(self, batch):
        size, k = batch["input_ids"].shape[0], self.num_labels
        expanded = {key: value.repeat_interleave(k, dim=0) for key, value in batch.items() if value.dim() == 2}
        labels = torch.arange(k, device=batch["input_ids"].device).repeat(size)
        return self.pair_logits(expanded, labels).view(size, k)

    def reads_per_training_row(self) -> int:
        """K under objective=softmax (every text is read once per label text), else 1 (one pair a row)."""
        return self.num_labels if self.config.objective == "softmax" else 1

    def training_loss(self, batch):
        if self.config.objective == "softmax":
            return nn.functional.cross_entropy(self.label_scores(batch), batch["labels"])
        logits = self.pair_logits(batch, batch["pair_labels"])
        return nn.functional.binary_cross_entropy_with_logits(logits, batch["pair_targets"].float())

    def eval_loss(self, scores, labels):
        if self.config.objective == "softmax":
            return nn.functional.cross_entropy(scores, labels)
        targets = nn.functional.one_hot(labels, scores.shape[1]).float()
        return nn.functional.binary_cross_entropy_with_logits(scores, targets)

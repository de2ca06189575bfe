"""The shared bases of the method configs. Each method's dataclass (``<method>/config.py``) is its
schema: keys, types, defaults and range checks in one place, registered in Hydra's ConfigStore
under ``method/<name>``."""

from __future__ import annotations

import dataclasses
from typing import List, Optional

from omegaconf import MISSING

from ltune.checks import Choice, positive_int, positive_number, require


class PairObjective(Choice):
    pairs = "pairs"  # the paper's (A.3): binary cross-entropy on one (text, label) pair per text, half wrong
    softmax = "softmax"  # cross-entropy over each text's K pair scores, the reading the argmax evaluation uses


@dataclasses.dataclass
class MethodConfig:
    name: str = MISSING
    lr: float = MISSING
    #: The learning rates a tuned comparison tries (hydra/sweeper=ltune_tune, chosen on held-out).
    #: Every method's space has the same number of points, so each gets the same search budget.
    lr_search: List[float] = MISSING

    def __post_init__(self):
        positive_number("method.lr", self.lr)
        require(len(self.lr_search) > 0, "method.lr_search needs at least one learning rate")
        for lr in self.lr_search:
            positive_number("method.lr_search", lr)


@dataclasses.dataclass
class VirtualTokensConfig(MethodConfig):
    """Prefix and prompt tuning: P learned positions shared by all classes, a K-way head."""

    num_virtual_tokens: int = 16

    def __post_init__(self):
        super().__post_init__()
        positive_int("method.num_virtual_tokens", self.num_virtual_tokens)


@dataclasses.dataclass
class LabelTextConfig(MethodConfig):
    """The L-methods: label texts encoded by the frozen model, a pair scorer with a 2-way head."""

    #: Pad (or cut) every label text to this many tokens; None: the longest label text.
    label_length: Optional[int] = None
    #: Ablation: re-encode label texts on every training step, as the reference code does.
    reencode_labels: bool = False
    #: Ablation: a bias in the 2-way head (the paper's count, 2d, has none).
    head_bias: bool = False
    #: The label maps (L-prefix's pooling w and Z, L-prompt's G) train at method.lr times this, the
    #: head at method.lr. 1: one rate for all (the paper names none); 0: the maps stay at their start.
    #: Adam moves each entry of a map by about the rate per step whatever the scale of its inputs,
    #: so a map reading a decoder's large label states moves its output far faster than the head's.
    map_lr_scale: float = 1.0
    #: What training minimises (PairObjective). softmax scores all K pairs of every text (K passes a
    #: text, where pairs takes one), and learns from the differences of a text's pair scores only.
    objective: PairObjective = PairObjective.pairs

    def __post_init__(self):
        super().__post_init__()
        positive_int("method.label_length", self.label_length, allow_none=True)
        require(self.map_lr_scale >= 0, f"method.map_lr_scale must be 0 or more, got {self.map_lr_scale}")

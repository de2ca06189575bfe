import dataclasses
from typing import List

from ltune.checks import Choice
from ltune.methods.config import LabelTextConfig


class LPrefixInit(Choice):
    random = "random"  # Z from torch's default Linear initialisation
    text = "text"  # Z fitted so that each label's prefix is its label text's own keys/values (as prefix's init=text)


class ZInput(Choice):
    pooling = "pooling"  # the paper: Z reads F's l pooling weights
    states = "states"  # the reference code's pooling=False branch: Z maps each label token's state


@dataclasses.dataclass
class LPrefixConfig(LabelTextConfig):
    """L-prefix (paper eq. 1): label states -> attention pooling F -> linear Z -> per-layer prefix."""

    name: str = "l_prefix"
    lr: float = 3e-2  # best mean held-out accuracy of lr_search in studies/offline_table/tuning.json
    lr_search: List[float] = dataclasses.field(default_factory=lambda: [1e-3, 3e-3, 1e-2, 3e-2])
    #: Normalise the pooling scores with a softmax over the label's real tokens (the paper).
    #: False keeps the raw scores, as the reference code does.
    pool_softmax: bool = True
    #: What Z maps to the prefix (ablation; the paper's is the default).
    z_input: ZInput = ZInput.pooling
    #: How Z starts. random: the default. text: fitted (least squares, minimum norm) so that
    #: label k's prefix is the frozen model's own keys/values of label text k: before training the
    #: model reads each pair as "label text, then text" (exactly so when the K pooling vectors, or
    #: with z_input=states the label tokens' states, are linearly independent).
    init: LPrefixInit = LPrefixInit.random

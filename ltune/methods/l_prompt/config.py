import dataclasses
from typing import List

from ltune.checks import Choice
from ltune.methods.config import LabelTextConfig


class LPromptInit(Choice):
    identity = "identity"  # the soft prompt starts as the label text's own states
    random = "random"  # PyTorch's default Linear initialisation
    text = "text"  # G fitted so that each label's soft prompt is its label text's own word embeddings


@dataclasses.dataclass
class LPromptConfig(LabelTextConfig):
    """L-prompt (paper eq. 2): label states -> linear G -> soft prompt in front of the text."""

    name: str = "l_prompt"
    lr: float = 1e-3  # best mean held-out accuracy of lr_search in studies/offline_table/tuning.json
    lr_search: List[float] = dataclasses.field(default_factory=lambda: [1e-4, 3e-4, 1e-3, 3e-3])
    init: LPromptInit = LPromptInit.identity

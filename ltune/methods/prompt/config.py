import dataclasses
from typing import List

from ltune.checks import Choice
from ltune.methods.config import VirtualTokensConfig


class PromptInit(Choice):
    vocab = "vocab"  # the embeddings of random vocabulary tokens (Lester et al.)
    random = "random"  # N(0, 0.02)


@dataclasses.dataclass
class PromptConfig(VirtualTokensConfig):
    """Prompt tuning (Lester et al. 2021): learned input embeddings in front of the text."""

    name: str = "prompt"
    lr: float = 1e-3  # best mean held-out accuracy of lr_search in studies/offline_table/tuning.json
    lr_search: List[float] = dataclasses.field(default_factory=lambda: [1e-3, 3e-3, 1e-2, 3e-2])
    init: PromptInit = PromptInit.vocab

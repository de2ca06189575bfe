from dataclasses import dataclass

from ltune.methods.checks import positive


@dataclass
class PromptConfig:
    """Prompt tuning (Lester et al. 2021): learned input embeddings in front of the text."""

    name: str = "prompt"
    lr: float = 3e-3
    num_virtual_tokens: int = 16
    #: "vocab": start from the embeddings of random vocabulary tokens (Lester et al.); "random": N(0, 0.02).
    init: str = "vocab"

    def __post_init__(self):
        positive("num_virtual_tokens", self.num_virtual_tokens, "prompt tuning needs at least one virtual token")
        positive("lr", self.lr)

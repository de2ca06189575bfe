from dataclasses import dataclass


@dataclass
class PromptConfig:
    """Prompt tuning (Lester et al. 2021): learned input embeddings in front of the text."""

    name: str = "prompt"
    lr: float = 3e-3
    num_virtual_tokens: int = 16
    #: "vocab": start from the embeddings of random vocabulary tokens (Lester et al.); "random": N(0, 0.02).
    init: str = "vocab"

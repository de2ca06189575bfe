from dataclasses import dataclass

from ltune.methods.checks import positive


@dataclass
class LPromptConfig:
    """L-prompt (paper eq. 2): label states -> linear G -> soft prompt in front of the text."""

    name: str = "l_prompt"
    lr: float = 1e-3
    #: How G starts: "identity" (the soft prompt starts as the label text's own states) or "random"
    #: (PyTorch's default Linear initialisation).
    init: str = "identity"
    #: Pad (or cut) every label text to this many tokens; None: the longest label text.
    label_length: int | None = None
    #: Ablation: re-encode label texts on every training step, as the reference code does.
    reencode_labels: bool = False

    def __post_init__(self):
        if self.label_length is not None:
            positive("label_length", self.label_length)
        positive("lr", self.lr)

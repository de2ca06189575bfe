from dataclasses import dataclass

from ltune.methods.checks import positive


@dataclass
class LPrefixConfig:
    """L-prefix (paper eq. 1): label states -> attention pooling F -> linear Z -> per-layer prefix."""

    name: str = "l_prefix"
    lr: float = 1e-1
    #: Normalise the pooling scores with a softmax over the label's real tokens (the paper).
    #: False keeps the raw scores, as the reference code does.
    pool_softmax: bool = True
    #: Pad (or cut) every label text to this many tokens; None: the longest label text.
    label_length: int | None = None
    #: Ablation: re-encode label texts on every training step, as the reference code does.
    reencode_labels: bool = False

    def __post_init__(self):
        if self.label_length is not None:
            positive("label_length", self.label_length)
        positive("lr", self.lr)

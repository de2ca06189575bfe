from dataclasses import dataclass

from ltune.methods.checks import positive


@dataclass
class PrefixConfig:
    """Prefix tuning (Li & Liang 2021; P-tuning v2): learned past keys/values in every layer."""

    name: str = "prefix"
    lr: float = 1e-2
    num_virtual_tokens: int = 16
    #: Produce the prefix through an MLP (Li & Liang) instead of learning it directly (P-tuning v2 default).
    reparameterize: bool = False
    reparam_hidden: int = 512

    def __post_init__(self):
        positive("num_virtual_tokens", self.num_virtual_tokens, "prefix tuning needs at least one virtual token")
        positive("reparam_hidden", self.reparam_hidden)
        positive("lr", self.lr)

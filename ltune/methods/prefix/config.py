from dataclasses import dataclass


@dataclass
class PrefixConfig:
    """Prefix tuning (Li & Liang 2021; P-tuning v2): learned past keys/values in every layer."""

    name: str = "prefix"
    lr: float = 1e-2
    num_virtual_tokens: int = 16
    #: Produce the prefix through an MLP (Li & Liang) instead of learning it directly (P-tuning v2 default).
    reparameterize: bool = False
    reparam_hidden: int = 512

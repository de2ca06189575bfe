import dataclasses
from typing import List

from ltune.checks import positive_int
from ltune.methods.config import VirtualTokensConfig


@dataclasses.dataclass
class PrefixConfig(VirtualTokensConfig):
    """Prefix tuning (Li & Liang 2021; P-tuning v2): learned past keys/values in every layer."""

    name: str = "prefix"
    lr: float = 3e-2  # best mean held-out accuracy of lr_search in docs/offline_table/tuning.json
    lr_search: List[float] = dataclasses.field(default_factory=lambda: [1e-3, 3e-3, 1e-2, 3e-2])
    #: Produce the prefix through an MLP (Li & Liang) instead of learning it directly (P-tuning v2 default).
    reparameterize: bool = False
    reparam_hidden: int = 512

    def __post_init__(self):
        super().__post_init__()
        positive_int("method.reparam_hidden", self.reparam_hidden)

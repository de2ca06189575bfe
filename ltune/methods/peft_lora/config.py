import dataclasses
from typing import List, Optional

from ltune.checks import positive_int, positive_number, require
from ltune.methods.config import MethodConfig


@dataclasses.dataclass
class PeftLoraConfig(MethodConfig):
    """peft's LoRA on the frozen model's attention projections, read with the same pooling and
    K-way head as prompt and prefix tuning: the reference point users calibrate PEFT results against."""

    name: str = "peft_lora"
    lr: float = 1e-3  # not in the offline table's lr search (no held-out evidence yet)
    lr_search: List[float] = dataclasses.field(default_factory=lambda: [3e-4, 1e-3, 3e-3, 1e-2])
    r: int = 8  # the rank of the update
    alpha: int = 16  # scaling alpha / r
    dropout: float = 0.0
    #: The modules LoRA adapts; null: the architecture's attention projections (ltune/backbone/architectures.py).
    target_modules: Optional[List[str]] = None

    def __post_init__(self):
        super().__post_init__()
        positive_int("method.r", self.r)
        positive_number("method.alpha", self.alpha)
        require(0 <= self.dropout < 1, f"method.dropout must be in [0, 1), got {self.dropout}")
        require(self.target_modules is None or len(self.target_modules) > 0,
                "method.target_modules needs at least one module name (or null for the architecture's default)")

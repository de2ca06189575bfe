import dataclasses
from typing import List

from ltune.checks import Choice
from ltune.methods.config import VirtualTokensConfig


class PeftPromptInit(Choice):
    SAMPLE_VOCAB = "SAMPLE_VOCAB"  # as our prompt's vocab init
    RANDOM = "RANDOM"


@dataclasses.dataclass
class PeftPromptConfig(VirtualTokensConfig):
    """peft's own PromptTuning on the same runner: the library users would otherwise pick, as an anchor."""

    name: str = "peft_prompt"
    lr: float = 3e-3  # not in the offline table's lr search (no held-out evidence yet)
    lr_search: List[float] = dataclasses.field(default_factory=lambda: [1e-3, 3e-3, 1e-2, 3e-2])
    init: PeftPromptInit = PeftPromptInit.SAMPLE_VOCAB

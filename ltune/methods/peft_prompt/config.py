from dataclasses import dataclass

from ltune.methods.checks import positive


@dataclass
class PeftPromptConfig:
    """peft's own PromptTuning on the same runner: the library users would otherwise pick, as an anchor."""

    name: str = "peft_prompt"
    lr: float = 3e-3
    num_virtual_tokens: int = 16
    #: peft's PromptTuningInit: "SAMPLE_VOCAB" (as our prompt's vocab init) or "RANDOM".
    init: str = "SAMPLE_VOCAB"

    def __post_init__(self):
        positive("num_virtual_tokens", self.num_virtual_tokens, "prompt tuning needs at least one virtual token")
        positive("lr", self.lr)

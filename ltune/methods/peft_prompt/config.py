from dataclasses import dataclass


@dataclass
class PeftPromptConfig:
    """peft's own PromptTuning on the same runner: the library users would otherwise pick, as an anchor."""

    name: str = "peft_prompt"
    lr: float = 3e-3
    num_virtual_tokens: int = 16
    #: peft's PromptTuningInit: "SAMPLE_VOCAB" (as our prompt's vocab init) or "RANDOM".
    init: str = "SAMPLE_VOCAB"

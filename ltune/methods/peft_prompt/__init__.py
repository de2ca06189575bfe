from ltune.methods import register
from ltune.methods.peft_prompt.config import PeftPromptConfig

register(PeftPromptConfig, f"{__name__}.model:PeftPrompt")

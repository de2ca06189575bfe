from ltune.methods import register
from ltune.methods.peft_prompt.config import PeftPromptConfig
from ltune.methods.peft_prompt.model import PeftPrompt

register(PeftPromptConfig, PeftPrompt)

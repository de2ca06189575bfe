from ltune.methods import register
from ltune.methods.prompt.config import PromptConfig

register(PromptConfig, f"{__name__}.model:Prompt")

from ltune.methods import register
from ltune.methods.l_prompt.config import LPromptConfig

register(LPromptConfig, f"{__name__}.model:LPrompt")

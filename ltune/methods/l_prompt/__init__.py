from ltune.methods import register
from ltune.methods.l_prompt.config import LPromptConfig
from ltune.methods.l_prompt.model import LPrompt

register(LPromptConfig, LPrompt)

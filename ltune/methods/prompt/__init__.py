from ltune.methods import register
from ltune.methods.prompt.config import PromptConfig
from ltune.methods.prompt.model import Prompt

register(PromptConfig, Prompt)

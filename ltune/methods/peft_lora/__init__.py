from ltune.methods import register
from ltune.methods.peft_lora.config import PeftLoraConfig
from ltune.methods.peft_lora.model import PeftLora

register(PeftLoraConfig, PeftLora)

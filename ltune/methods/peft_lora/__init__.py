from ltune.methods import register
from ltune.methods.peft_lora.config import PeftLoraConfig

register(PeftLoraConfig, f"{__name__}.model:PeftLora")

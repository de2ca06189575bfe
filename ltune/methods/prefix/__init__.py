from ltune.methods import register
from ltune.methods.prefix.config import PrefixConfig

register(PrefixConfig, f"{__name__}.model:Prefix")

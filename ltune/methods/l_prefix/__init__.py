from ltune.methods import register
from ltune.methods.l_prefix.config import LPrefixConfig

register(LPrefixConfig, f"{__name__}.model:LPrefix")

from ltune.methods import register
from ltune.methods.l_prefix.config import LPrefixConfig
from ltune.methods.l_prefix.model import LPrefix

register(LPrefixConfig, LPrefix)

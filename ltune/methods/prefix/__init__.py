from ltune.methods import register
from ltune.methods.prefix.config import PrefixConfig
from ltune.methods.prefix.model import Prefix

register(PrefixConfig, Prefix)

"""The tuning methods, one folder each (config beside module), behind ``TuningMethod``."""

from __future__ import annotations

import dataclasses

from omegaconf import DictConfig, OmegaConf

from ltune.backbone import Backbone
from ltune.errors import LtuneError
from ltune.methods.base import TuningMethod
from ltune.methods.l_prefix.config import LPrefixConfig
from ltune.methods.l_prefix.model import LPrefix
from ltune.methods.l_prompt.config import LPromptConfig
from ltune.methods.l_prompt.model import LPrompt
from ltune.methods.peft_prompt.config import PeftPromptConfig
from ltune.methods.peft_prompt.model import PeftPrompt
from ltune.methods.prefix.config import PrefixConfig
from ltune.methods.prefix.model import Prefix
from ltune.methods.prompt.config import PromptConfig
from ltune.methods.prompt.model import Prompt

METHODS: dict[str, tuple[type, type[TuningMethod]]] = {
    "l_prefix": (LPrefixConfig, LPrefix),
    "l_prompt": (LPromptConfig, LPrompt),
    "prefix": (PrefixConfig, Prefix),
    "prompt": (PromptConfig, Prompt),
    "peft_prompt": (PeftPromptConfig, PeftPrompt),
}


def method_config(cfg) -> DictConfig:
    """Validate a method config against its dataclass; unknown or missing keys are errors."""
    raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    name = raw.get("name")
    if name not in METHODS:
        raise LtuneError(f"unknown method '{name}'; valid: {', '.join(METHODS)}")
    config_class = METHODS[name][0]
    fields = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise LtuneError(f"unknown key(s) {unknown} for method={name}; valid keys: {', '.join(sorted(fields))}")
    return OmegaConf.structured(config_class(**raw))


def build_method(cfg, backbone: Backbone, label_texts: list[str]) -> TuningMethod:
    config = method_config(cfg)
    return METHODS[config.name][1](backbone, config, label_texts)

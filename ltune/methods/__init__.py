"""The tuning methods: one folder each (``config.py`` beside ``model.py``); each folder registers
itself with ``register`` when this package is imported.

Adding a method is adding a folder: a config dataclass (a ``MethodConfig``), a ``TuningMethod``
subclass, and an ``__init__.py`` that calls ``register(ConfigClass, "<folder>.model:ModelClass")``.
The model module is imported when a method is first built, so checking a config imports neither
torch nor transformers (``ltune train method=lprefix`` answers at once).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import NamedTuple

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ltune.checks import one_line
from ltune.errors import LtuneError


class MethodEntry(NamedTuple):
    config: type  # the config dataclass (the method's schema)
    model_path: str  # "package.module:Class" of the TuningMethod subclass

    @property
    def model(self) -> type:
        """The TuningMethod subclass (its module imported on first use)."""
        module, _, name = self.model_path.partition(":")
        return getattr(importlib.import_module(module), name)


METHODS: dict[str, MethodEntry] = {}


def register(config_class: type, model_path: str) -> None:
    """Called by each method folder: the method's name is its config's ``name`` default;
    ``model_path`` is "package.module:Class" of its TuningMethod."""
    METHODS[config_class.name] = MethodEntry(config_class, model_path)


def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.ispkg:
            importlib.import_module(f"{__name__}.{module.name}")


def method_config(cfg):
    """The method's config object (its dataclass, with every check run) from a composed config
    node or a plain dict; unknown or mistyped keys are one-line errors."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        raw = dataclasses.asdict(cfg)
    else:
        raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    name = raw.get("name")
    if name not in METHODS:
        raise LtuneError(f"unknown method '{name}'; valid: {', '.join(sorted(METHODS))}")
    schema = OmegaConf.structured(METHODS[name].config)
    try:
        return OmegaConf.to_object(OmegaConf.merge(schema, raw))
    except OmegaConfBaseException as err:
        raise LtuneError(f"method={name}: {one_line(err)}") from None


def build_method(cfg, backbone, label_texts: list[str]):
    config = method_config(cfg)
    return METHODS[config.name].model(backbone, config, label_texts)


_discover()

"""The thin per-architecture adapter layer.

Everything that differs between model families lives here and nowhere else: the facts in
``architectures`` (one table), tokenising in ``tokenizing``, running and reading the model
(prefix entry, prompts, positions, pooling) in ``encoding``, and loading in ``loading``.
Tuning methods only call ``Backbone``.
"""

import importlib

#: Where each name lives; imported on first use, so that ``ltune.backbone.sources`` (the checks a
#: command makes before anything loads) imports neither torch nor transformers.
_NAMES = {"ARCHITECTURES": "architectures", "Architecture": "architectures", "kv_layout": "architectures",
          "POOLINGS": "encoding", "Backbone": "encoding", "DTYPES": "loading", "forget": "loading",
          "load_backbone": "loading", "resolve_model_source": "sources", "check_model_source": "sources"}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module 'ltune.backbone' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ltune.backbone.{_NAMES[name]}"), name)

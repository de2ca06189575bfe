"""The thin per-architecture adapter layer.

Everything that differs between model families lives here and nowhere else: the facts in
``architectures`` (one table), tokenising in ``tokenizing``, running and reading the model
(prefix entry, prompts, positions, pooling) in ``encoding``, and loading in ``loading``.
Tuning methods only call ``Backbone``.
"""

from ltune.backbone.architectures import ARCHITECTURES, Architecture, kv_layout
from ltune.backbone.encoding import POOLINGS, Backbone
from ltune.backbone.loading import DTYPES, forget, load_backbone, resolve_model_source

__all__ = ["ARCHITECTURES", "Architecture", "Backbone", "DTYPES", "POOLINGS", "forget", "kv_layout", "load_backbone",
           "resolve_model_source"]

"""The config schema: dataclasses that Hydra composes into (structured configs).

The dataclasses are the one source of truth for keys, types and defaults of the run config
(methods keep theirs beside their code, in ``ltune/methods/<name>/config.py``). Composition checks
types and choices (choices are Enums: OmegaConf has no Literal type); ``validate`` then builds
the dataclass objects, so every ``__post_init__`` range check runs before a run folder exists.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from ltune.checks import Choice, is_int, one_line, positive_int, positive_number, require
from ltune.errors import LtuneError

from ltune.metric_names import METRICS


# -- model ------------------------------------------------------------------------------------

class Pooling(Choice):
    pooler = "pooler"
    cls = "cls"
    mean = "mean"
    last = "last"


class DType(Choice):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


QUANTIZATIONS = ("none", "8bit", "4bit")
ATTENTIONS = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")


@dataclasses.dataclass
class ModelConfig:
    name: str = MISSING
    package: Optional[str] = None  # a Python package that ships the weights (offline models)
    path: Optional[str] = None  # hub id or local folder (inside the package, if package is set)
    gguf_file: Optional[str] = None  # a GGUF file in that folder (needs the gguf package)
    pooling: Pooling = MISSING  # pooler | cls | mean | last
    dtype: DType = DType.float32  # the frozen backbone; trainable parts stay float32
    quantization: str = "none"  # none | 8bit | 4bit (NF4, bf16 compute) through bitsandbytes; CUDA only
    device_map: Any = None  # null: the whole model on trainer.device; or e.g. auto / {"": 0}
    max_length: int = 128  # text tokens; max_length + prefix/prompt must fit the position table
    attn_implementation: Optional[str] = None  # null: transformers' choice; eager | sdpa | flash_attention_2 | ...
    trust_remote_code: bool = False
    random_init: Optional[Dict[str, Any]] = None  # {model_type: ..., sizes}: random weights (benchmarks)

    def __post_init__(self):
        positive_int("model.max_length", self.max_length)
        require(self.quantization in QUANTIZATIONS,
                f"unknown model.quantization '{self.quantization}'; valid: {', '.join(QUANTIZATIONS)}")
        require(self.attn_implementation in (None, *ATTENTIONS),
                f"unknown model.attn_implementation '{self.attn_implementation}'; valid: {', '.join(ATTENTIONS)} (or null)")
        require(bool(self.path or self.package), f"model {self.name}: set model.path (hub id or folder) or model.package")


# -- data -------------------------------------------------------------------------------------

class LabelTextKind(Choice):
    configured = "configured"  # data.label_texts as given
    permuted = "permuted"  # the same texts rotated by one class: no class keeps its own
    meaningless = "meaningless"  # neutral words of each text's token length (ltune/data/label_texts.py)
    label_first = "label_first"  # the words that set each text apart first: a decoder reads them at every position


@dataclasses.dataclass
class DataConfig:
    name: str = MISSING
    hub_path: Optional[str] = None  # a hub data set (datasets.load_dataset), or a local folder with split files
    hub_name: Optional[str] = None  # its configuration name (e.g. GLUE's task)
    glue_dir: Optional[str] = "${oc.env:LTUNE_GLUE_DIR,null}"  # a folder in GLUE's original TSV layout
    glue_task: Optional[str] = None  # the task's folder in glue_dir (CoLA, RTE, ...)
    glue_files: Optional[Dict[str, str]] = None  # {split: file} where not train.tsv / dev.tsv / test.tsv
    glue_columns: Optional[Dict[str, str]] = None  # {our field: TSV column} where GLUE's header differs
    #: Local files: {train: path, validation: path}. Typed Any (checked in __post_init__): an
    #: OmegaConf Dict node that is null cannot take a whole dict from the command line
    #: (data=cb 'data.files={train: ..., validation: ...}' failed inside OmegaConf's merge).
    files: Any = None
    format: Optional[str] = None  # json | csv | tsv | parquet; null: from the file suffix
    train_split: str = "train"
    eval_split: str = "validation"  # the split reported as "dev"; never used for selection
    skip_labels: Optional[List[Any]] = None  # label values to drop (e.g. SNLI's -1 = no gold label)
    text_fields: List[str] = MISSING  # one text column, or two for sentence pairs
    label_field: str = "label"
    label_names: List[Any] = MISSING  # label values in order: index i = label id i
    labels_are_indices: bool = False  # true: a label value that names no label is an index into label_names
    label_texts: List[str] = MISSING  # one label text (verbalizer) per label, encoded by the L-methods
    #: Which label texts the L-methods encode (does the label's meaning matter?): configured,
    #: permuted (wrong classes) or meaningless (same token length); or label_first (the configured
    #: texts with the words that set them apart moved to the front: for decoders, whose states at the
    #: shared first words are the same for every label); see ltune/data/label_texts.py.
    #: Non-L methods (a head per label) read no label text and ignore it.
    label_text_kind: LabelTextKind = LabelTextKind.configured
    metrics: List[str] = dataclasses.field(default_factory=lambda: ["accuracy"])
    max_train_samples: Optional[int] = None  # seeded caps
    max_eval_samples: Optional[int] = None
    #: The seed of the dev cap's sample (not the run's seed): every seed replicate and every method
    #: is scored on the same dev examples, so runs can be compared pair by pair.
    eval_sample_seed: int = 0
    heldout_fraction: float = 0.1  # model selection uses this seeded slice of the training split
    max_heldout_samples: int = 500

    def __post_init__(self):
        require(len(self.text_fields) in (1, 2),
                f"data.text_fields must name one column or two (a sentence pair), got {list(self.text_fields)}")
        unknown = sorted(set(self.metrics) - set(METRICS))
        require(not unknown, f"unknown data.metrics {unknown}; valid: {', '.join(METRICS)}")
        require("f1" not in self.metrics or len(self.label_names) == 2,
                f"data.metrics has f1 (binary) but data set {self.name} has {len(self.label_names)} labels; "
                f"use macro_f1")
        positive_int("data.max_train_samples", self.max_train_samples, allow_none=True)
        positive_int("data.max_eval_samples", self.max_eval_samples, allow_none=True)
        positive_int("data.max_heldout_samples", self.max_heldout_samples)
        require(0 < self.heldout_fraction < 1, f"data.heldout_fraction must be between 0 and 1, got {self.heldout_fraction}")
        require(self.format in (None, "json", "csv", "tsv", "parquet"),
                f"unknown data.format '{self.format}'; valid: json, csv, tsv, parquet (or null)")
        require(self.files is None or (isinstance(self.files, dict) and all(
                    isinstance(k, str) and isinstance(v, str) for k, v in self.files.items())),
                f"data.files must map split names to file paths, e.g. {{train: a.jsonl, validation: b.jsonl}}, "
                f"got {self.files!r}")
        require(bool(self.files or self.hub_path or (self.glue_dir and self.glue_task)),
                f"data set {self.name} names no source: set data.files, data.hub_path or data.glue_dir")


# -- trainer ----------------------------------------------------------------------------------

class Precision(Choice):
    fp32 = "fp32"
    bf16 = "bf16"


class Device(Choice):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


@dataclasses.dataclass
class TrainerConfig:
    max_steps: int = 300  # optimizer steps; ignored when epochs is set
    epochs: Optional[int] = None  # train for this many passes over the training split instead
    batch_size: int = 16
    eval_batch_size: int = 32
    lr: float = "${method.lr}"  # defaults to the method's learning rate
    weight_decay: float = 0.0
    warmup_ratio: float = 0.06  # linear warm-up, then linear decay to 0
    grad_clip: float = 1.0
    eval_every: int = 50  # evaluate on the held-out slice every N steps (and at the end)
    #: Early stopping: stop after this many held-out evaluations without a gain of more than
    #: min_delta in accuracy (null: train the whole budget). The report shows where each run stopped.
    patience: Optional[int] = None
    min_delta: float = 0.0
    #: Early stopping never stops a run before this many steps (an L-method can sit on its initial
    #: plateau for longer than the patience; the run then still trains up to here).
    min_steps: int = 0
    #: The held-out metric that picks a run's best evaluation, drives early stopping and the
    #: learning-rate search; one of data.metrics (e.g. matthews_corr on CoLA, where accuracy is
    #: best served by predicting the majority class).
    select_on: str = "accuracy"
    #: Batches of similar length (seeded; far less padding). false: uniformly random batches.
    group_by_length: bool = True
    checkpoint_every: Optional[int] = "${trainer.eval_every}"  # save checkpoint.pt (resume state) every N steps
    device: Device = Device.auto
    precision: Precision = Precision.fp32  # bf16: autocast of the forward pass; trainable weights stay fp32
    compile: bool = False  # torch.compile the frozen backbone (inductor; on CPU it needs a C++ compiler)
    fused_optimizer: Any = "auto"  # AdamW's fused kernel: auto = on CUDA; true = also on CPU; false = never
    num_threads: Optional[int] = None  # CPU threads for torch; null = torch's default
    #: Dropout inside the frozen model while training (its own layers' dropout, as transformers sets it).
    #: false runs the frozen model as at evaluation; packed training (hydra.sweeper.pack) needs it, since
    #: one forward over several runs' texts cannot give each run its own dropout stream.
    backbone_dropout: bool = True

    def __post_init__(self):
        for key in ("batch_size", "eval_batch_size", "eval_every"):
            positive_int(f"trainer.{key}", getattr(self, key))
        positive_int("trainer.epochs", self.epochs, allow_none=True)
        if self.epochs is None:
            require(is_int(self.max_steps) and self.max_steps >= 1,
                    f"trainer.max_steps must be a positive integer (or set trainer.epochs), got {self.max_steps!r}")
        positive_number("trainer.lr", self.lr)
        require(self.weight_decay >= 0, f"trainer.weight_decay must be >= 0, got {self.weight_decay}")
        require(0 <= self.warmup_ratio < 1, f"trainer.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        require(self.grad_clip >= 0, f"trainer.grad_clip must be >= 0 (0 = off), got {self.grad_clip}")
        positive_int("trainer.checkpoint_every", self.checkpoint_every, allow_none=True)
        positive_int("trainer.patience", self.patience, allow_none=True)
        require(self.min_delta >= 0, f"trainer.min_delta must be >= 0, got {self.min_delta}")
        require(is_int(self.min_steps) and self.min_steps >= 0,
                f"trainer.min_steps must be an integer >= 0, got {self.min_steps!r}")
        require(self.select_on in METRICS, f"trainer.select_on must be one of {', '.join(METRICS)}, "
                f"got {self.select_on!r}")
        positive_int("trainer.num_threads", self.num_threads, allow_none=True)
        require(self.fused_optimizer in ("auto", True, False),
                f"trainer.fused_optimizer must be auto, true or false, got {self.fused_optimizer!r}")


# -- logger -----------------------------------------------------------------------------------

@dataclasses.dataclass
class LoggerConfig:
    name: str = "none"  # none (local files only) | wandb
    project: str = "ltune"
    entity: Optional[str] = None
    group: Optional[str] = None  # null: the sweep folder's name in multirun, none in a single run
    tags: List[str] = dataclasses.field(default_factory=list)
    mode: Optional[str] = None  # wandb: offline (default) | online | disabled

    def __post_init__(self):
        require(self.name in ("none", "wandb"), f"unknown logger '{self.name}'; valid: none, wandb")
        require(self.mode in (None, "offline", "online", "disabled"),
                f"unknown logger.mode '{self.mode}'; valid: offline, online, disabled")


# -- the run ----------------------------------------------------------------------------------

@dataclasses.dataclass
class RunConfig:
    """One run = model x data x method (+ trainer, logger); conf/config.yaml picks the defaults."""

    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    method: Any = MISSING  # one of the method configs (each method folder registers its dataclass)
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    seed: int = 42
    resume: Optional[str] = None  # a run folder to continue, or auto: the newest unfinished run of this config
    #: Set by the tuning sweeper (hydra.sweeper.pack): a pack file naming the runs this job trains together.
    pack: Optional[str] = None
    run_name: str = "${model.name}_${data.name}_${method.name}_s${seed}"
    output_root: str = "${oc.env:LTUNE_OUTPUT_DIR,outputs}"

    def __post_init__(self):
        # NumPy's seed is an unsigned 32-bit number (torch's and Python's would take more).
        require(is_int(self.seed) and 0 <= self.seed < 2**32,
                f"seed must be an integer from 0 to {2**32 - 1}, got {self.seed!r}")
        require(self.trainer.select_on in self.data.metrics,
                f"trainer.select_on={self.trainer.select_on} is not computed for data={self.data.name} "
                f"(its metrics: {', '.join(self.data.metrics)}); pick one of those or add it to data.metrics")
        kind = getattr(self.data.label_text_kind, "value", self.data.label_text_kind)
        from ltune.methods.config import LabelTextConfig

        require(kind == "configured" or isinstance(self.method, LabelTextConfig),
                f"data.label_text_kind={kind} has no effect with method={getattr(self.method, 'name', '?')}: its "
                f"K-way head reads no label text; use an L-method (l_prefix, l_prompt) or data.label_text_kind=configured")


def register() -> None:
    """Put the schema into Hydra's ConfigStore (idempotent)."""
    from ltune.methods import METHODS

    store = ConfigStore.instance()
    store.store(name="run_schema", node=RunConfig)
    store.store(group="trainer", name="default", node=TrainerConfig)
    # For users' own model/data yaml files that start from the shared keys:
    # defaults: [/base/data@_here_, _self_]
    store.store(group="base", name="model", node=ModelConfig)
    store.store(group="base", name="data", node=DataConfig)
    for name, entry in METHODS.items():
        store.store(group="method", name=name, node=entry.config)


def validate(cfg: DictConfig) -> None:
    """Build the schema objects of a composed config: every range check runs. A problem is one
    LtuneError line naming the key."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.to_object(cfg)
    except OmegaConfBaseException as err:
        raise LtuneError(one_line(err)) from None

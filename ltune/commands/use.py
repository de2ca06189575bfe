"""Use a trained run: ``ltune eval`` (any split or data set with the same labels), ``ltune
predict`` (texts from arguments, a file or stdin; open label texts for the methods that support
them) and ``ltune explain``.

Their ``key=value`` arguments are composed with Hydra's compose API against an options
dataclass (types and choices checked there); free-text values (texts, paths) are passed as quoted
strings, so commas, quotes, brackets and ``${`` in a text stay text. A finished run folder is never
written: evaluations and explanations go to ``<outputs>/evals`` and ``<outputs>/explain``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import time
from pathlib import Path
from typing import List, Optional

import torch
from omegaconf import MISSING, OmegaConf

from ltune import run_files
from ltune.checks import Choice, one_line
from ltune.config.schema import Device, Precision
from ltune.errors import LtuneError


class Format(Choice):
    table = "table"
    jsonl = "jsonl"


@dataclasses.dataclass
class EvalOptions:
    run: str = MISSING
    data: Optional[str] = None  # another data config with the same labels: a name, or the path of a yaml file
    config_dir: Optional[str] = None  # a folder of the user's configs (data/<name>.yaml), as train's --config-dir
    split: Optional[str] = None
    glue_dir: Optional[str] = None
    batch_size: Optional[int] = None  # default: the run's trainer.eval_batch_size
    max_samples: Optional[str] = None  # N or all; default: the run's data.max_eval_samples
    precision: Optional[Precision] = None  # default: the run's trainer.precision
    device: Optional[Device] = None  # default: the run's trainer.device
    out: Optional[str] = None  # the result file; default <outputs>/evals/<run>/...
    label_texts: Optional[str] = None  # a JSON list, one label text per label: score dev under this wording (L-methods)


@dataclasses.dataclass
class PredictOptions:
    run: str = MISSING
    text: List[str] = dataclasses.field(default_factory=list)
    file: Optional[str] = None
    labels: Optional[str] = None  # a JSON list of label texts (open labels)
    format: Format = Format.table
    batch_size: int = 32
    precision: Optional[Precision] = None
    device: Optional[Device] = None


class ExplainFormat(Choice):
    png = "png"  # scores, highlighted text, L-prefix pooling weights
    html = "html"  # a self-contained page with the highlighted text
    jsonl = "jsonl"  # one record per text and label (for many texts from a file)


class ExplainLabels(Choice):
    predicted = "predicted"
    all = "all"


@dataclasses.dataclass
class ExplainOptions:
    run: str = MISSING
    text: Optional[str] = None
    text_pair: Optional[str] = None
    file: Optional[str] = None  # many texts: .txt (a text a line), .jsonl or .csv
    format: ExplainFormat = ExplainFormat.png
    labels: ExplainLabels = ExplainLabels.predicted  # explain the predicted label, or every label
    steps: int = 32  # integration steps of integrated gradients
    out: Optional[str] = None  # default <outputs>/explain/<run>/<time>.<format>
    device: Optional[Device] = None


#: Option values taken as text, never parsed (paths, texts, JSON).
FREE_TEXT = ("run", "text", "text_pair", "file", "labels", "label_texts", "out", "glue_dir", "data", "split", "max_samples",
             "config_dir")


def quote(value: str) -> str:
    """``value`` as a Hydra quoted string that composes back to exactly ``value``."""
    out = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    out = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, out)
    return "'" + out.replace("${", "\\${") + "'"


def parse_options(args: list[str], schema: type, repeatable: tuple[str, ...] = ()):
    """``key=value`` arguments composed onto ``schema`` with Hydra's compose API."""
    from hydra import compose, initialize
    from hydra.core.config_store import ConfigStore
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    fields = [f.name for f in dataclasses.fields(schema)]
    values: dict[str, list[str]] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in fields:
            raise LtuneError(f"bad option '{arg}'; valid: {', '.join(f'{k}=' for k in fields)}")
        if key in values and key not in repeatable:
            raise LtuneError(f"option {key}= is given twice; give it once")
        values.setdefault(key, []).append(value)
    overrides = []
    for key, given in values.items():
        texts = [quote(v) if key in FREE_TEXT else v for v in given]
        overrides.append(f"{key}=[{','.join(texts)}]" if key in repeatable else f"{key}={texts[0]}")
    name = f"ltune_{schema.__name__}"
    ConfigStore.instance().store(name=name, node=schema)
    try:
        with initialize(version_base=None, config_path=None):
            options = compose(name, overrides=overrides)
        if OmegaConf.is_missing(options, "run"):
            raise LtuneError("give the trained run folder: run=<run dir>")
        return OmegaConf.to_object(options)
    except (HydraException, OmegaConfBaseException) as err:
        cause = err.__cause__ if isinstance(err.__cause__, OmegaConfBaseException) else err
        raise LtuneError(f"bad option: {one_line(cause)}") from None


def outputs_folder() -> Path:
    import os

    return Path(os.environ.get("LTUNE_OUTPUT_DIR", "outputs"))


def check_output_place(out: str | None) -> None:
    """Before a model is loaded: the result file's folder can exist (no file in its way)."""
    if out:
        run_files.check_folder_path(Path(out).parent, "the folder of out=", "give out=<a file in a writable folder>")
    else:
        run_files.check_folder_path(outputs_folder(), "the output folder (LTUNE_OUTPUT_DIR)",
                                    "give a writable one: LTUNE_OUTPUT_DIR=<folder>, or out=<file>")


def read_run_config(run_dir: Path):
    """A finished run folder's config (nothing loaded yet); refuses a folder without trained parameters."""
    run_dir = Path(run_dir)
    params, config = run_dir / run_files.PARAMS, run_dir / run_files.CONFIG
    if not config.is_file() or not params.is_file():
        raise LtuneError(f"{run_dir} holds no trained parameters ({run_files.PARAMS}); give a finished run folder")
    try:
        cfg = OmegaConf.load(config)
        cfg.method.name, cfg.data.label_texts, cfg.model.name  # noqa: B018  (the keys a run folder must have)
    except Exception as err:  # truncated or edited YAML
        raise LtuneError(f"{config} is not a readable ltune run config ({type(err).__name__}); "
                         f"restore it or retrain the run") from None
    return cfg


def check_open_labels(cfg) -> None:
    """Open label texts need a method that scores (text, label text) pairs."""
    from ltune.methods import METHODS

    entry = METHODS.get(cfg.method.name)
    if entry is None or not entry.model.supports_open_labels:
        raise LtuneError(
            f"method={cfg.method.name} has a head trained for the run's {len(cfg.data.label_names)} labels; "
            f"open label texts need a method that scores (text, label text) pairs, such as l_prefix or l_prompt"
        )


def load_run(run_dir: Path, label_texts: list[str] | None = None, device: str | None = None):
    """(config, method with the run's trained parameters) of a finished run folder, on the run's
    own device setting (trainer.device) unless ``device`` overrides it. Without ``label_texts`` the
    method encodes the texts the run was trained with (data.label_texts by data.label_text_kind)."""
    from safetensors.torch import load_file

    from ltune.backbone import load_backbone
    from ltune.data.label_texts import label_texts_of
    from ltune.methods import build_method
    from ltune.runtime import pick_device

    run_dir = Path(run_dir)
    params = run_dir / run_files.PARAMS
    cfg = read_run_config(run_dir)
    try:
        state = load_file(params)
    except Exception as err:  # safetensors raises its own error types for a cut file
        raise LtuneError(f"{params} is not a readable safetensors file ({str(err).splitlines()[0][:80]}); "
                         f"the file is damaged: restore it or retrain the run") from None
    method_cfg = OmegaConf.to_container(cfg.method)
    if label_texts is not None:
        check_open_labels(cfg)
        if "transform.weight" in state and cfg.method.get("z_input", "pooling") == "pooling":
            method_cfg["label_length"] = state["transform.weight"].shape[1]  # Z reads l pooled weights
    target = pick_device(str(device or cfg.trainer.get("device", "auto")))
    backbone = load_backbone(cfg.model, target)
    if not backbone.placed:
        backbone.to(target)
    method = build_method(method_cfg, backbone, label_texts or label_texts_of(cfg.data, backbone.tokenizer))
    method.load_trainable_state_dict(state)
    if not backbone.placed:
        method.to(target)
    return cfg, method.eval()


def eval_data_config(options: EvalOptions, run_cfg):
    """The data config ``data=`` names: one of ltune's, one in ``config_dir=`` (data/<name>.yaml), or the path
    of a yaml file; composed and checked as ``ltune train`` would, and with the run's label names in the
    run's order (a label's index is what the run's head or label texts mean)."""
    import shutil
    import tempfile

    from ltune.config import check_overrides, compose_checked, validate_data

    given = Path(options.data).expanduser()
    extra = [Path(options.config_dir)] if options.config_dir else []
    for folder in extra:
        if not (folder / "data").is_dir():
            raise LtuneError(f"config_dir={folder} has no data/ folder; give the folder that holds data/<name>.yaml")
    if options.data.endswith((".yaml", ".yml")) or given.is_file():
        if not given.is_file():
            raise LtuneError(f"data={options.data}: no such file; give a data config's yaml file or a data config name")
        with tempfile.TemporaryDirectory(prefix="ltune-eval-data-") as scratch:
            (Path(scratch) / "data").mkdir()
            shutil.copyfile(given, Path(scratch) / "data" / given.name)
            data_cfg = compose_checked([f"data={given.stem}"], [Path(scratch)]).data
    else:
        check_overrides([f"data={options.data}", *(a for d in extra for a in ("--config-dir", str(d)))])
        data_cfg = compose_checked([f"data={options.data}"], extra).data
    validate_data(data_cfg)
    if [str(n) for n in data_cfg.label_names] != [str(n) for n in run_cfg.data.label_names]:
        raise LtuneError(
            f"data {data_cfg.name} has labels {[str(n) for n in data_cfg.label_names]}, the run was trained on "
            f"{[str(n) for n in run_cfg.data.label_names]}; eval needs the same label names in the same order"
        )
    return data_cfg


def eval_command(args: list[str]) -> dict:
    from ltune.data import load_task
    from ltune.data.collate import evaluation_loader
    from ltune.evaluation import predict_scores, score, tie_warning, tied_label_groups

    options = parse_options(args, EvalOptions)
    wording = open_label_texts(options.label_texts, "label_texts")
    check_output_place(options.out)
    if wording is not None:  # checked before the model is loaded
        run_cfg = read_run_config(Path(options.run))
        check_open_labels(run_cfg)
        if len(wording) != len(run_cfg.data.label_names):
            raise LtuneError(f"label_texts= gives {len(wording)} label texts but the run has "
                             f"{len(run_cfg.data.label_names)} labels {[str(n) for n in run_cfg.data.label_names]}; "
                             f"give one text per label, in that order")
    run_cfg = read_run_config(Path(options.run))
    data_cfg = eval_data_config(options, run_cfg) if options.data else run_cfg.data  # checked before the model loads
    cfg, method = load_run(Path(options.run), wording, device=options.device)
    # The run's own precision and evaluation batch size, so that its dev figure is reproduced.
    precision = str(options.precision or cfg.trainer.get("precision", "fp32"))
    batch_size = options.batch_size or cfg.trainer.get("eval_batch_size", 32)
    OmegaConf.set_struct(data_cfg, False)
    if options.glue_dir:
        data_cfg.glue_dir = options.glue_dir
    if options.split:
        data_cfg.eval_split = options.split

    # By default the run's own cap (so the run's dev figure is reproduced); max_samples=all lifts it.
    if options.max_samples == "all":
        data_cfg.max_eval_samples = None
    elif options.max_samples:
        if not options.max_samples.isdigit() or int(options.max_samples) < 1:
            raise LtuneError(f"max_samples must be a positive number or all, got '{options.max_samples}'")
        data_cfg.max_eval_samples = int(options.max_samples)
    task = load_task(data_cfg, cfg.seed)
    loader = evaluation_loader(task.dev, method.backbone, batch_size)
    tick = time.perf_counter()
    predictions = predict_scores(method, loader, method.backbone.device, "eval", precision)
    metrics = score(method, predictions, task.metrics)
    result = {"run": str(options.run), "data": data_cfg.name, "split": data_cfg.eval_split, "metrics": metrics,
              "precision": precision, "device": str(method.backbone.device), "seconds": time.perf_counter() - tick}
    if wording is not None:
        names = [str(n) for n in cfg.data.label_names]
        tied = tied_label_groups(predictions.scores, method)
        warning = tie_warning(tied, names, str(cfg.method.name), metrics["examples"])
        if warning:
            print(warning, file=sys.stderr, flush=True)
        result.update(label_texts=dict(zip(names, wording)),
                      tied_labels=[[names[i] for i in group] for group in tied],
                      accuracy_ci95=accuracy_interval(metrics["accuracy"], metrics["examples"]),
                      interval="Wilson score 95% interval of the accuracy over the dev examples "
                               "(scipy.stats.binomtest), given this trained run")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tag = "_label_texts" if wording is not None else ""
    out = Path(options.out) if options.out else (outputs_folder() / "evals" / Path(options.run).resolve().name
                                                 / f"{data_cfg.name}_{data_cfg.eval_split}{tag}_{stamp}.json")
    run_files.write_json(out, result)
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "examples")
    if wording is not None:
        low, high = result["accuracy_ci95"]
        print(f"ltune: label texts {json.dumps(wording)}")
        shown += f" (accuracy 95% interval {low:.4f}-{high:.4f}, Wilson, over dev examples)"
    print(f"ltune: {data_cfg.name} {data_cfg.eval_split} ({metrics['examples']} texts): {shown}")
    print(f"ltune: wrote {out}")
    return result


def read_texts(options, fields: list[str]) -> list[tuple[str, ...]]:
    """Texts from text= arguments, a txt/jsonl/csv file, or stdin (one text per line)."""
    from ltune.data.files import check_file, read_rows

    if options.text:
        given = [options.text] if isinstance(options.text, str) else options.text
        pair = getattr(options, "text_pair", None)
        rows = [(t, pair) if pair else (t,) for t in given]
    elif options.file:
        path = check_file(Path(options.file), "file")
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".json", ".csv", ".tsv"):
            records = read_rows(path, {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "tsv"}[suffix])
            if not records:
                raise LtuneError(f"{path} holds no rows; give one text per row")
            keys = fields if all(f in records[0] for f in fields) else ["text"]
            missing = [k for k in keys if k not in records[0]]
            if missing:
                raise LtuneError(f"{path} has no column(s) {missing}; give {fields} or 'text'")
            for number, record in enumerate(records, start=1):
                for key in keys:
                    value = record[key]
                    if value is None or not str(value).strip():
                        raise LtuneError(f"{path} row {number} has {'no' if value is None else 'an empty'} text in "
                                         f"'{key}'{' (null)' if value is None else ''}; drop or fill such rows")
            rows = [tuple(str(r[k]) for k in keys) for r in records]
        else:
            rows = [(line,) for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    else:
        rows = [(line,) for line in sys.stdin.read().splitlines() if line.strip()]
    if options.text and any(not t.strip() for row in rows for t in row if t is not None):
        raise LtuneError("text= is empty; give the text to score")
    if not rows:
        raise LtuneError("no texts to predict: give text=..., file=... or lines on stdin")
    if len(fields) > 1 and len(rows[0]) == 1:
        raise LtuneError(f"this run's data has text pairs {fields}: give a jsonl or csv file with those columns")
    return rows


def open_label_texts(raw: str | None, option: str = "labels") -> list[str] | None:
    """The label texts of a ``labels=`` (or ``label_texts=``) option: a JSON list of different texts."""
    if raw is None:
        return None
    try:
        labels = json.loads(raw)
    except json.JSONDecodeError:
        raise LtuneError(f"{option}= takes a JSON list, e.g. {option}='[\"sports\", \"politics\"]'") from None
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise LtuneError(f"{option}= takes a JSON list of label texts, e.g. {option}='[\"sports\", \"politics\"]'; "
                         f"got {raw}")
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise LtuneError(f"{option}= needs at least two different label texts")
    return labels


def accuracy_interval(accuracy: float, examples: int) -> list[float]:
    """The Wilson score 95% interval of an accuracy over ``examples`` texts (scipy.stats.binomtest)."""
    from scipy import stats

    hits = round(accuracy * examples)
    ci = stats.binomtest(hits, examples).proportion_ci(confidence_level=0.95, method="wilson")
    return [float(ci.low), float(ci.high)]


@torch.no_grad()
def predict_probabilities(method, rows: list[tuple[str, ...]], batch_size: int = 32, precision: str = "fp32"):
    """(scores, probabilities) of every label for each row, row i of the result for ``rows[i]``.
    The L-methods score each (text, label) pair on its own: sigmoid; the K-way heads: softmax."""
    from ltune.data import Example
    from ltune.data.collate import evaluation_loader
    from ltune.evaluation import in_given_order, predict_scores

    loader = evaluation_loader([Example(texts, 0, i) for i, texts in enumerate(rows)], method.backbone, batch_size)
    # The loader batches by length: the ids put each row of scores back beside its text.
    scores = in_given_order(predict_scores(method, loader, method.backbone.device, "predict", precision))
    return scores, (scores.sigmoid() if method.pair_training else scores.softmax(-1))


@torch.no_grad()
def predict_command(args: list[str]) -> list[dict]:
    from ltune.evaluation import tie_warning, tied_label_groups

    options = parse_options(args, PredictOptions, repeatable=("text",))
    open_labels = open_label_texts(options.labels)
    cfg, method = load_run(Path(options.run), open_labels, device=options.device)
    names = open_labels or [str(n) for n in cfg.data.label_names]
    rows = read_texts(options, list(cfg.data.text_fields))
    precision = str(options.precision or cfg.trainer.get("precision", "fp32"))
    scores, probs = predict_probabilities(method, rows, options.batch_size, precision)
    warning = tie_warning(tied_label_groups(scores, method), names, str(cfg.method.name), len(rows))
    if warning:
        print(warning, file=sys.stderr, flush=True)
    results = []
    for texts, row in zip(rows, probs.tolist()):
        best = max(range(len(names)), key=lambda i: row[i])
        results.append({"text": " ||| ".join(texts), "label": names[best], "scores": dict(zip(names, row))})
    if options.format == "jsonl":
        for r in results:
            print(json.dumps(r))
    else:
        print_table(results, names)
    return results


def print_table(results: list[dict], names: list[str]) -> None:
    """Label texts are numbered columns (full texts in the legend), so long label texts that share
    a beginning never print as identical columns."""
    width = min(60, max(len(r["text"]) for r in results))
    short = all(len(n) <= 12 for n in names)
    headers = names if short else [f"[{i + 1}]" for i in range(len(names))]
    column = max(8, *(len(h) for h in headers))
    if not short:
        for i, name in enumerate(names):
            print(f"[{i + 1}] {name}")
    label_width = 16 if short else 6
    print(f"{'text':<{width}}  {'label':<{label_width}}  " + "  ".join(f"{h:>{column}}" for h in headers))
    for r in results:
        text = r["text"] if len(r["text"]) <= width else r["text"][: width - 1] + "…"
        label = r["label"][:16] if short else f"[{names.index(r['label']) + 1}]"
        print(f"{text:<{width}}  {label:<{label_width}}  " + "  ".join(f"{r['scores'][n]:>{column}.4f}" for n in names))


def explain_command(args: list[str]) -> Path:
    """Every label's score and token attributions for one text (or every text of a file)."""
    from ltune.explain import explain

    options = parse_options(args, ExplainOptions)
    if not options.text and not options.file:
        raise LtuneError("give the text to explain: text='...' (and text_pair='...' for sentence-pair data), "
                         "or file=<texts>")
    if options.steps < 2:
        raise LtuneError(f"steps must be at least 2, got {options.steps}")
    check_output_place(options.out)
    cfg, method = load_run(Path(options.run), device=options.device)
    texts = read_texts(options, list(cfg.data.text_fields))
    if len(texts) > 1 and options.format == "png":
        raise LtuneError(f"{len(texts)} texts: give format=jsonl or format=html for more than one text")
    out = Path(options.out) if options.out else (
        outputs_folder() / "explain" / Path(options.run).resolve().name / f"{time.strftime('%Y%m%d-%H%M%S')}.{options.format}")
    return explain(cfg, method, texts, options, out)

"""Use a trained run: ``ltune eval`` (any split or data set with the same labels) and
``ltune predict`` (texts from arguments, a file or stdin; open label texts for the L-methods)."""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from ltune import run_files
from ltune.errors import LtuneError


def parse_options(args: list[str], allowed: dict[str, object], repeatable: tuple[str, ...] = ()) -> dict:
    options = {key: ([] if key in repeatable else value) for key, value in allowed.items()}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in allowed:
            raise LtuneError(f"bad option '{arg}'; valid: {', '.join(f'{k}=' for k in allowed)}")
        if key in repeatable:
            options[key].append(value)
        else:
            options[key] = value
    if not options.get("run"):
        raise LtuneError("give the trained run folder: run=<run dir>")
    return options


def load_run(run_dir: Path, label_texts: list[str] | None = None, device: str | None = None):
    """(config, method with the run's trained parameters) of a finished run folder, on the run's
    own device setting (trainer.device) unless ``device`` overrides it."""
    from ltune.backbone import load_backbone
    from ltune.methods import build_method
    from ltune.train import pick_device

    run_dir = Path(run_dir)
    params, config = run_dir / run_files.PARAMS, run_dir / run_files.CONFIG
    if not config.is_file() or not params.is_file():
        raise LtuneError(f"{run_dir} holds no trained parameters ({run_files.PARAMS}); give a finished run folder")
    cfg = OmegaConf.load(config)
    state = load_file(params)
    method_cfg = OmegaConf.to_container(cfg.method)
    if label_texts is not None:
        if cfg.method.name not in ("l_prefix", "l_prompt"):
            raise LtuneError(
                f"method={cfg.method.name} has a head trained for the run's {len(cfg.data.label_names)} labels; "
                f"open label texts need an L-method run (l_prefix or l_prompt)"
            )
        if cfg.method.name == "l_prefix":  # Z reads pooled label vectors of the trained length l
            method_cfg["label_length"] = state["transform.weight"].shape[1]
    target = pick_device(device or cfg.trainer.get("device", "auto"))
    backbone = load_backbone(cfg.model, target)
    if not backbone.placed:
        backbone.to(target)
    method = build_method(method_cfg, backbone, label_texts or list(cfg.data.label_texts))
    method.load_trainable_state_dict(state)
    if not backbone.placed:
        method.to(target)
    return cfg, method.eval()


def eval_command(args: list[str]) -> dict:
    from ltune.cli import compose_config, check_overrides
    from ltune.data import load_task
    from ltune.data.collate import ClassificationCollator, TokenizedExamples
    from ltune.evaluation import evaluate

    options = parse_options(args, {"run": None, "data": None, "split": None, "glue_dir": None, "batch_size": None,
                                   "max_samples": None, "precision": None, "device": None})
    cfg, method = load_run(Path(options["run"]), device=options["device"])
    # The run's own precision and evaluation batch size, so that its dev figure is reproduced.
    precision = options["precision"] or cfg.trainer.get("precision", "fp32")
    if precision not in ("fp32", "bf16"):
        raise LtuneError(f"unknown precision '{precision}'; valid: fp32, bf16")
    batch_size = int(options["batch_size"] or cfg.trainer.get("eval_batch_size", 32))
    data_cfg = cfg.data
    if options["data"]:
        check_overrides([f"data={options['data']}"])
        data_cfg = compose_config([f"data={options['data']}"]).data
    OmegaConf.set_struct(data_cfg, False)
    if options["glue_dir"]:
        data_cfg.glue_dir = options["glue_dir"]
    if options["split"]:
        data_cfg.eval_split = options["split"]
    if list(data_cfg.label_names) != list(cfg.data.label_names):
        raise LtuneError(
            f"data {data_cfg.name} has labels {list(data_cfg.label_names)}, the run was trained on "
            f"{list(cfg.data.label_names)}; eval needs the same label names"
        )
    # By default the run's own cap (so the run's dev figure is reproduced); max_samples=all lifts it.
    if options["max_samples"] == "all":
        data_cfg.max_eval_samples = None
    elif options["max_samples"]:
        data_cfg.max_eval_samples = int(options["max_samples"])
    task = load_task(data_cfg, cfg.seed)
    loader = DataLoader(TokenizedExamples(task.dev, method.backbone), batch_size=batch_size,
                        collate_fn=ClassificationCollator(method.backbone))
    tick = time.perf_counter()
    metrics = evaluate(method, loader, method.backbone.device, task.metrics, "eval", precision)
    result = {"run": str(options["run"]), "data": data_cfg.name, "split": data_cfg.eval_split, "metrics": metrics,
              "precision": precision, "device": str(method.backbone.device), "seconds": time.perf_counter() - tick}
    out = Path(options["run"]) / "evals" / f"{data_cfg.name}_{data_cfg.eval_split}_{time.strftime('%Y%m%d-%H%M%S')}.json"
    run_files.write_json(out, result)
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "examples")
    print(f"ltune: {data_cfg.name} {data_cfg.eval_split} ({metrics['examples']} texts): {shown}")
    print(f"ltune: wrote {out}")
    return result


def read_texts(options: dict, fields: list[str]) -> list[tuple[str, ...]]:
    """Texts from text= arguments, a txt/jsonl/csv file, or stdin (one text per line)."""
    if options["text"]:
        rows = [(t,) for t in options["text"]]
    elif options["file"]:
        path = Path(options["file"])
        if not path.is_file():
            raise LtuneError(f"file {path} not found")
        if path.suffix == ".jsonl":
            records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        elif path.suffix == ".csv":
            with path.open(newline="") as handle:
                records = list(csv.DictReader(handle))
        else:
            records = None
            rows = [(line,) for line in path.read_text().splitlines() if line.strip()]
        if records is not None:
            keys = fields if all(f in records[0] for f in fields) else ["text"]
            missing = [k for k in keys if k not in records[0]]
            if missing:
                raise LtuneError(f"{path} has no column(s) {missing}; give {fields} or 'text'")
            rows = [tuple(str(r[k]) for k in keys) for r in records]
    else:
        rows = [(line,) for line in sys.stdin.read().splitlines() if line.strip()]
    if not rows:
        raise LtuneError("no texts to predict: give text=..., file=... or lines on stdin")
    if len(fields) > 1 and len(rows[0]) == 1:
        raise LtuneError(f"this run's data has text pairs {fields}: give a jsonl or csv file with those columns")
    return rows


@torch.no_grad()
def predict_command(args: list[str]) -> list[dict]:
    from ltune.data import Example
    from ltune.data.collate import ClassificationCollator, TokenizedExamples

    options = parse_options(args, {"run": None, "text": None, "file": None, "labels": None, "format": "table",
                                   "batch_size": "32"}, repeatable=("text",))
    if options["format"] not in ("table", "jsonl"):
        raise LtuneError(f"unknown format '{options['format']}'; valid: table, jsonl")
    open_labels = None
    if options["labels"]:
        try:
            open_labels = [str(x) for x in json.loads(options["labels"])]
        except json.JSONDecodeError:
            raise LtuneError("labels= takes a JSON list, e.g. labels='[\"sports\", \"politics\"]'") from None
        if len(open_labels) < 2:
            raise LtuneError("labels= needs at least two label texts")
    cfg, method = load_run(Path(options["run"]), open_labels)
    names = open_labels or list(cfg.data.label_names)
    rows = read_texts(options, list(cfg.data.text_fields))
    examples = [Example(texts, 0) for texts in rows]
    loader = DataLoader(TokenizedExamples(examples, method.backbone), batch_size=int(options["batch_size"]),
                        collate_fn=ClassificationCollator(method.backbone))
    device = method.backbone.device
    scores = torch.cat([method.label_scores({k: v.to(device) for k, v in b.items()}).float().cpu() for b in loader])
    # L-methods score each (text, label) pair on its own: sigmoid; the K-way heads: softmax.
    probs = scores.sigmoid() if method.pair_training else scores.softmax(-1)
    results = []
    for texts, row in zip(rows, probs.tolist()):
        best = max(range(len(names)), key=lambda i: row[i])
        results.append({"text": " ||| ".join(texts), "label": names[best],
                        "scores": dict(zip(names, row))})
    if options["format"] == "jsonl":
        for r in results:
            print(json.dumps(r))
    else:
        width = min(60, max(len(r["text"]) for r in results))
        print(f"{'text':<{width}}  {'label':<16}  " + "  ".join(f"{n[:12]:>12}" for n in names))
        for r in results:
            text = r["text"] if len(r["text"]) <= width else r["text"][: width - 1] + "…"
            print(f"{text:<{width}}  {r['label'][:16]:<16}  " + "  ".join(f"{r['scores'][n]:>12.4f}" for n in names))
    return results


@torch.no_grad()
def explain_command(args: list[str]) -> Path:
    """Per-label scores of one text; for L-prefix also F's pooling weights over each label's tokens."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ltune.data import Example
    from ltune.data.collate import ClassificationCollator, TokenizedExamples

    options = parse_options(args, {"run": None, "text": None, "text_pair": None, "out": None})
    if not options["text"]:
        raise LtuneError("give the text to explain: text='...' (and text_pair='...' for sentence-pair data)")
    cfg, method = load_run(Path(options["run"]))
    texts = (options["text"],) if not options["text_pair"] else (options["text"], options["text_pair"])
    if len(cfg.data.text_fields) != len(texts):
        raise LtuneError(f"this run's data has {len(cfg.data.text_fields)} text field(s) {list(cfg.data.text_fields)}")
    backbone = method.backbone
    batch = ClassificationCollator(backbone)([TokenizedExamples([Example(texts, 0)], backbone)[0]])
    device = next(method.parameters()).device
    scores = method.label_scores({k: v.to(device) for k, v in batch.items()})[0].float().cpu()
    probs = scores.sigmoid() if method.pair_training else scores.softmax(-1)
    names = list(cfg.data.label_names)
    print(f"text: {' ||| '.join(texts)}")
    print(f"{'label':<20} {'label text':<50} {'score':>8}")
    for name, label_text, p in zip(names, method.label_texts, probs.tolist()):
        print(f"{name[:20]:<20} {label_text[:50]:<50} {p:>8.4f}")

    weights = None
    if cfg.method.name == "l_prefix":
        weights = method.pooled_label_scores().cpu()  # (K, l): F's weights; they depend on the label only
        print("\nL-prefix pooling weights over each label's tokens (they depend on the label text, not on the input):")
        for k, name in enumerate(names):
            tokens = backbone.tokenizer.convert_ids_to_tokens(method.label_ids[k][method.label_mask[k]].tolist())
            print(f"  {name}: " + "  ".join(f"{t}={w:.3f}" for t, w in zip(tokens, weights[k].tolist())))

    rows = 2 if weights is not None else 1
    fig, axes = plt.subplots(rows, 1, figsize=(7, 2.2 + 2.2 * rows), squeeze=False)
    axes[0][0].barh(names[::-1], probs.tolist()[::-1], color="C0")
    axes[0][0].set_xlim(0, 1)
    axes[0][0].set_xlabel("sigmoid of the pair score" if method.pair_training else "softmax over labels")
    axes[0][0].set_title(f"{cfg.method.name} on {cfg.model.name}: {' | '.join(texts)[:70]}", fontsize=9)
    if weights is not None:
        ax = axes[1][0]
        ax.imshow(weights.numpy(), aspect="auto", cmap="Blues", vmin=0)
        for k in range(len(names)):
            tokens = backbone.tokenizer.convert_ids_to_tokens(method.label_ids[k].tolist())
            for t, token in enumerate(tokens):
                if method.label_mask[k, t]:
                    ax.text(t, k, f"{token}\n{weights[k, t]:.2f}", ha="center", va="center", fontsize=7)
        ax.set_yticks(range(len(names)), names)
        ax.set_xticks([])
        ax.set_title("L-prefix pooling weights F over each label text's tokens", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    out = Path(options["out"]) if options["out"] else Path(options["run"]) / "explain" / f"{time.strftime('%Y%m%d-%H%M%S')}.png"
    run_files.atomic_write_bytes(out, buffer.getvalue())
    print(f"ltune: wrote {out}")
    return out

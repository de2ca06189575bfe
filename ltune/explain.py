"""``ltune explain``: why did the run pick that label?

- Every label's score for the text.
- Token attributions (captum's layer integrated gradients over the frozen model's input
  embeddings): how much each input token moved the chosen label's score, for every method. The
  baseline is the same text with every token but the special ones ([CLS], [SEP], <s>, ...)
  replaced by the padding token; the attributions of a text sum to (score - baseline score), up
  to the integration error ``delta`` that is printed with them.
- For L-prefix also the pooling weights F puts on each label text's tokens (they depend on the
  label text only, never on the input).

Outputs: a table in the terminal, a PNG with the text highlighted, a self-contained HTML page;
``format=jsonl`` for many texts from a file.
"""

from __future__ import annotations

import dataclasses
import html
import io
import json
from pathlib import Path

import torch

from ltune import run_files
from ltune.errors import LtuneError

BASELINE = "the text with every non-special token replaced by the padding token"


@dataclasses.dataclass
class Attribution:
    texts: tuple
    label: str  # the label the attributions explain
    score: float  # that label's score (logit) for the text
    baseline_score: float
    tokens: list[str]
    values: list[float]  # one per token; they sum to score - baseline_score (up to delta)
    delta: float  # integrated-gradients convergence error
    special: list[bool]

    def as_dict(self) -> dict:
        return {"text": " ||| ".join(self.texts), "label": self.label, "score": self.score,
                "baseline_score": self.baseline_score, "convergence_delta": self.delta, "baseline": BASELINE,
                "attributions": [{"token": t, "attribution": v} for t, v in zip(self.tokens, self.values)]}


def single_batch(backbone, texts: tuple) -> dict:
    from ltune.data import Example
    from ltune.data.collate import ClassificationCollator, TokenizedExamples

    batch = ClassificationCollator(backbone)([TokenizedExamples([Example(texts, 0)], backbone)[0]])
    return {k: v.to(backbone.device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


def label_score_function(method, target: int):
    """score(input_ids, attention_mask[, token_type_ids]) -> the target label's score per row."""

    def score(input_ids, attention_mask, token_type_ids=None):
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            batch["token_type_ids"] = token_type_ids
        if method.pair_training:  # one pair pass: (text, label text of the target)
            return method.pair_logits(batch, torch.full((input_ids.shape[0],), target, device=input_ids.device))
        return method.label_scores(batch)[:, target]

    return score


def baseline_ids(backbone, input_ids: torch.Tensor) -> torch.Tensor:
    special = torch.tensor([[i in backbone.tokenizer.all_special_ids for i in row] for row in input_ids.tolist()],
                           device=input_ids.device)
    return torch.where(special, input_ids, torch.full_like(input_ids, backbone.pad_token_id))


def attribute(method, texts: tuple, target: int, label: str, steps: int = 32) -> Attribution:
    """Layer integrated gradients of the target label's score over the input embeddings."""
    try:
        from captum.attr import LayerIntegratedGradients
    except ImportError:
        raise LtuneError("token attributions need captum: pip install captum") from None
    backbone = method.backbone
    batch = single_batch(backbone, texts)
    score = label_score_function(method, target)
    extra = (batch["attention_mask"], batch["token_type_ids"]) if "token_type_ids" in batch else (batch["attention_mask"],)
    baseline = baseline_ids(backbone, batch["input_ids"])
    integrated = LayerIntegratedGradients(score, backbone.model.get_input_embeddings())
    with torch.enable_grad():
        values, delta = integrated.attribute(batch["input_ids"], baselines=baseline, additional_forward_args=extra,
                                             n_steps=steps, internal_batch_size=steps, return_convergence_delta=True)
    with torch.no_grad():
        actual, reference = float(score(batch["input_ids"], *extra)), float(score(baseline, *extra))
    ids = batch["input_ids"][0].tolist()
    return Attribution(texts, label, actual, reference, backbone.tokenizer.convert_ids_to_tokens(ids),
                       values.sum(-1)[0].detach().float().cpu().tolist(), float(delta.abs().max()),
                       [i in backbone.tokenizer.all_special_ids for i in ids])


def label_probabilities(method, texts: tuple) -> torch.Tensor:
    with torch.no_grad():
        scores = method.label_scores(single_batch(method.backbone, texts))[0].float().cpu()
    return scores.sigmoid() if method.pair_training else scores.softmax(-1)


# -- output -----------------------------------------------------------------------------------

def print_scores(texts: tuple, names: list[str], label_texts: list[str], probs: torch.Tensor) -> None:
    print(f"text: {' ||| '.join(texts)}")
    print(f"{'label':<20} {'label text':<50} {'score':>8}")
    for name, label_text, p in zip(names, label_texts, probs.tolist()):
        print(f"{name[:20]:<20} {label_text[:50]:<50} {p:>8.4f}")


def print_attributions(result: Attribution, top: int = 10) -> None:
    print(f"\ntoken attributions to '{result.label}' (score {result.score:.3f}, baseline {result.baseline_score:.3f}, "
          f"integration error {result.delta:.1e}; baseline: {BASELINE}):")
    order = sorted(range(len(result.tokens)), key=lambda i: -abs(result.values[i]))
    for i in [i for i in order if not result.special[i]][:top]:
        print(f"  {result.tokens[i]:<20} {result.values[i]:+.4f}")


def _colour(value: float, scale: float) -> tuple[float, float, float, float]:
    strength = min(abs(value) / scale, 1.0) if scale else 0.0
    return (0.1, 0.6, 0.2, strength * 0.8) if value >= 0 else (0.85, 0.15, 0.15, strength * 0.8)


def html_page(results: list[Attribution], title: str) -> str:
    blocks = []
    for r in results:
        scale = max((abs(v) for v in r.values), default=1.0)
        spans = "".join(
            f'<span title="{v:+.4f}" style="background: rgba({int(c[0] * 255)},{int(c[1] * 255)},{int(c[2] * 255)},'
            f'{c[3]:.2f}); padding: 1px 2px; margin: 1px; border-radius: 3px">{html.escape(t)}</span>'
            for t, v, c in ((t, v, _colour(v, scale)) for t, v in zip(r.tokens, r.values)))
        blocks.append(f"<h3>{html.escape(r.label)} (score {r.score:.3f}, baseline {r.baseline_score:.3f})</h3>"
                      f"<p style='line-height: 2em; font-family: monospace'>{spans}</p>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family: sans-serif; max-width: 60em'><h2>{html.escape(title)}</h2>"
            f"<p>Green tokens raised the label's score, red ones lowered it (integrated gradients over the input "
            f"embeddings; baseline: {BASELINE}). Hover a token for its value.</p>{''.join(blocks)}</body></html>")


def png(results: list[Attribution], probs: torch.Tensor, names: list[str], title: str, weights=None) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heights = [2.0] + [0.25 + 0.3 * (len(r.tokens) // 14 + 1) for r in results] + ([2.0] if weights is not None else [])
    fig, axes = plt.subplots(len(heights), 1, figsize=(9, 0.8 + sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    axes[0][0].barh(names[::-1], probs.tolist()[::-1], color="C0")
    axes[0][0].set_xlim(0, 1)
    axes[0][0].set_title(title[:100], fontsize=9)
    for ax, r in zip((a[0] for a in axes[1:]), results):
        _highlight(ax, r)
    if weights is not None:
        _plot_pooling(axes[-1][0], *weights)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _highlight(ax, r: Attribution, per_line: int = 14) -> None:
    scale = max((abs(v) for v in r.values), default=1.0)
    ax.axis("off")
    ax.set_title(f"attributions to '{r.label}' (integrated gradients; green raises, red lowers the score)", fontsize=8)
    for i, (token, value) in enumerate(zip(r.tokens, r.values)):
        lines = len(r.tokens) // per_line + 1
        x, y = (i % per_line) / per_line, 1 - (i // per_line) / lines
        ax.text(x, y, token, fontsize=8, ha="left", va="top", transform=ax.transAxes,
                bbox={"facecolor": _colour(value, scale), "edgecolor": "none", "pad": 1.5})


def _plot_pooling(ax, method, pooling: torch.Tensor, names: list[str]) -> None:
    ax.imshow(pooling.numpy(), aspect="auto", cmap="Blues", vmin=0)
    for k in range(len(names)):
        tokens = method.backbone.tokenizer.convert_ids_to_tokens(method.label_ids[k].tolist())
        for t, token in enumerate(tokens):
            if method.label_mask[k, t]:
                ax.text(t, k, f"{token}\n{pooling[k, t]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_yticks(range(len(names)), names)
    ax.set_xticks([])
    ax.set_title("L-prefix pooling weights F over each label text's tokens (independent of the input)", fontsize=9)


def pooling_weights(cfg, method, names: list[str]):
    """(method, F's weights (K, l), names) for L-prefix with the paper's pooling, else None."""
    if cfg.method.name != "l_prefix" or not hasattr(method, "pool_weight"):
        return None
    with torch.no_grad():
        weights = method.pooled_label_scores().cpu()
    print("\nL-prefix pooling weights over each label's tokens (they depend on the label text, not on the input):")
    for k, name in enumerate(names):
        tokens = method.backbone.tokenizer.convert_ids_to_tokens(method.label_ids[k][method.label_mask[k]].tolist())
        print(f"  {name}: " + "  ".join(f"{t}={w:.3f}" for t, w in zip(tokens, weights[k].tolist())))
    return method, weights, names


def explain(cfg, method, texts_list: list[tuple], options, out: Path) -> Path:
    """Explain every text of ``texts_list``; writes ``out`` (PNG, HTML or JSONL by ``options.format``)."""
    names = [str(n) for n in cfg.data.label_names]
    if any(len(t) != len(cfg.data.text_fields) for t in texts_list):
        raise LtuneError(f"this run's data has {len(cfg.data.text_fields)} text field(s) {list(cfg.data.text_fields)}")
    results, first_probs = [], None
    for texts in texts_list:
        probs = label_probabilities(method, texts)
        first_probs = probs if first_probs is None else first_probs
        targets = range(len(names)) if options.labels == "all" else [int(probs.argmax())]
        explained = [attribute(method, texts, k, names[k], options.steps) for k in targets]
        results += explained
        if options.format != "jsonl":
            print_scores(texts, names, method.label_texts, probs)
            for r in explained:
                print_attributions(r)
    if options.format == "jsonl":
        payload = "".join(json.dumps(r.as_dict()) + "\n" for r in results)
        run_files.write_text(out, payload)
    elif options.format == "html":
        run_files.write_text(out, html_page(results, f"{cfg.method.name} on {cfg.model.name}"))
    else:
        weights = pooling_weights(cfg, method, names)
        title = f"{cfg.method.name} on {cfg.model.name}: {' | '.join(texts_list[0])}"
        run_files.atomic_write_bytes(out, png(results, first_probs, names, title, weights))
    print(f"ltune: wrote {out}")
    return out

"""``ltune explain``: every label's score for one text, as a table and a PNG; for L-prefix also
the pooling weights F puts on each label text's tokens (they depend on the label text only)."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from ltune import run_files
from ltune.errors import LtuneError


def explain(cfg, method, options, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ltune.data import Example
    from ltune.data.collate import ClassificationCollator, TokenizedExamples

    texts = (options.text,) if not options.text_pair else (options.text, options.text_pair)
    if len(cfg.data.text_fields) != len(texts):
        raise LtuneError(f"this run's data has {len(cfg.data.text_fields)} text field(s) {list(cfg.data.text_fields)}")
    backbone = method.backbone
    batch = ClassificationCollator(backbone)([TokenizedExamples([Example(texts, 0)], backbone)[0]])
    scores = method.label_scores({k: v.to(backbone.device) for k, v in batch.items()})[0].float().cpu()
    probs = scores.sigmoid() if method.pair_training else scores.softmax(-1)
    names = [str(n) for n in cfg.data.label_names]
    print(f"text: {' ||| '.join(texts)}")
    print(f"{'label':<20} {'label text':<50} {'score':>8}")
    for name, label_text, p in zip(names, method.label_texts, probs.tolist()):
        print(f"{name[:20]:<20} {label_text[:50]:<50} {p:>8.4f}")

    weights = None
    if cfg.method.name == "l_prefix" and hasattr(method, "pool_weight"):
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
        _plot_pooling(axes[1][0], method, weights, names)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    run_files.atomic_write_bytes(out, buffer.getvalue())
    print(f"ltune: wrote {out}")
    return out


def _plot_pooling(ax, method, weights: torch.Tensor, names: list[str]) -> None:
    ax.imshow(weights.numpy(), aspect="auto", cmap="Blues", vmin=0)
    for k in range(len(names)):
        tokens = method.backbone.tokenizer.convert_ids_to_tokens(method.label_ids[k].tolist())
        for t, token in enumerate(tokens):
            if method.label_mask[k, t]:
                ax.text(t, k, f"{token}\n{weights[k, t]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_yticks(range(len(names)), names)
    ax.set_xticks([])
    ax.set_title("L-prefix pooling weights F over each label text's tokens", fontsize=9)

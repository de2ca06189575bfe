"""Does a prefix, before any training, spoil what the frozen model's pooled vector knows?

    python scripts/prefix_probe.py [--model smollm2] [--data sst2] [--train 384] [--heldout 256] [--out CSV]
                                   [override ...]

Reads the first --train texts of the training split and the first --heldout of the held-out slice
(ltune's own split, seed 0), pools each as ltune's prefix method does under three starts of a
P-position prefix (method.num_virtual_tokens), and fits a logistic-regression probe (L2, scipy's
L-BFGS) on the train vectors; prints and writes the probe's held-out accuracy per start:

- none: no prefix, the model as it is;
- random: the prefix method's default start, N(0, 1) keys and values (P-tuning v2, peft);
- random x 0.01: the same, scaled down (keys near 0 still take attention: it measures the dilution);
- text: method.init=text, the model's own keys/values of method.init_text's first P tokens.

With --l-prefix, two more rows for L-prefix started from its label texts (method=l_prefix
method.init=text): "label 1" pools each text under label 1's prefix, "label difference" probes the
difference of the pooled vectors under labels 1 and 0, which is all that L-prefix's 2-way head can
use for its argmax (the two scores differ by the head applied to that difference); "pair agreement"
probes single pooled vectors (text, label k) for whether k is the text's label, which is what the
paper's pair objective (binary cross-entropy on (text, label) pairs) asks a linear head to read.

With --l-prompt, the same two rows for L-prompt's label prompts under its identity start (the
label's last states in front) and its text start (method.init=text: the label's word embeddings),
each with the mean norms of the prompt vectors and of the label words' embeddings. --skip-prefix
leaves out the four prefix rows.

A start far below "none" leaves the head and the prefix to recover features the model had before
training. Extra arguments are ltune overrides (model.max_length=64, data.glue_dir=...).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

try:
    import ltune  # noqa: F401
except ImportError:  # run from a checkout without ltune installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def probe_accuracy(train_x: np.ndarray, train_y, test_x: np.ndarray, test_y, l2: float = 1e-2) -> float:
    """Held-out accuracy of an L2 logistic regression (features standardised on train) for binary labels."""
    from scipy.optimize import minimize

    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a = np.hstack([(train_x - mean) / std, np.ones((len(train_x), 1))])
    b = np.hstack([(test_x - mean) / std, np.ones((len(test_x), 1))])
    sign = 2 * np.asarray(train_y) - 1

    def loss(w):
        margin = sign * (a @ w)
        value = np.logaddexp(0, -margin).mean() + l2 * (w @ w)
        grad = -(a * (sign * 0.5 * (1 - np.tanh(margin / 2)))[:, None]).mean(0) + 2 * l2 * w
        return value, grad

    w = minimize(loss, np.zeros(a.shape[1]), jac=True, method="L-BFGS-B").x
    return float(((b @ w > 0).astype(int) == np.asarray(test_y)).mean())


def pooled(backbone, texts: list[str], prefix_kv: torch.Tensor | None, prefix_mask: torch.Tensor | None = None,
           batch_size: int = 32, prompt: torch.Tensor | None = None) -> np.ndarray:
    """Pooled vectors of ``texts`` with ``prefix_kv`` (layers, 2, 1, kv heads, P, head dim) or a ``prompt``
    (1, P, embedding width) in front, ``prefix_mask`` (1, P) their real positions, or neither."""
    out = []
    for start in range(0, len(texts), batch_size):
        encoded = backbone.tokenize(texts[start:start + batch_size])
        size = len(encoded["input_ids"])
        batch = backbone.pad([{key: rows[i] for key, rows in encoded.items()} for i in range(size)])
        batch = {key: value.to(backbone.device) for key, value in batch.items()}
        kv = None if prefix_kv is None else prefix_kv.expand(-1, -1, size, -1, -1, -1)
        mask = None if prefix_mask is None else prefix_mask.expand(size, -1)
        if prompt is not None:
            placed = {"prompt": prompt.expand(size, -1, -1), "prompt_mask": mask}
        else:
            placed = {"prefix_kv": kv, "prefix_mask": mask}
        with torch.no_grad(), torch.autocast(backbone.device.type, dtype=torch.bfloat16,
                                             enabled=backbone.device.type == "cuda"):
            out.append(backbone.encode(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"),
                                       **placed).float().cpu())
    return torch.cat(out).numpy()


def label_rows(backbone, label_texts, train, heldout, name: str, init: str) -> tuple[dict[str, float], int, dict]:
    """Probe accuracies under an L-method's label prefixes or prompts started with ``init`` (see the
    module), their length, and for L-prompt the mean norms of its prompt vectors and of the label
    tokens' word embeddings they stand in for (real label positions)."""
    from ltune.methods import build_method, method_config

    torch.manual_seed(0)
    method = build_method(method_config({"name": name, "init": init}), backbone, label_texts).eval()
    with torch.no_grad():
        if name == "l_prefix":
            prefixes = method.label_prefixes()
        else:
            prompts = method.prompt_map(method.label_states)
            norms = dict(zip(("prompt_norm", "word_norm"), (round(n, 3) for n in method.prompt_and_word_norms())))

    def under(examples, k):
        texts, mask = [e.texts[0] for e in examples], method.label_mask[k:k + 1]
        if name == "l_prefix":
            return pooled(backbone, texts, prefixes[:, :, k:k + 1], mask)
        return pooled(backbone, texts, None, mask, prompt=prompts[k:k + 1])

    train_y, test_y = np.array([e.label for e in train]), np.array([e.label for e in heldout])
    train_0, train_1, test_0, test_1 = under(train, 0), under(train, 1), under(heldout, 0), under(heldout, 1)
    # The paper's pair objective asks one pooled vector (text, label k) whether k is the text's label.
    agreement = probe_accuracy(np.vstack([train_0, train_1]), np.concatenate([train_y == 0, train_y == 1]).astype(int),
                               np.vstack([test_0, test_1]), np.concatenate([test_y == 0, test_y == 1]).astype(int))
    return {f"{name} {init}: label 1": probe_accuracy(train_1, train_y, test_1, test_y),
            f"{name} {init}: label difference": probe_accuracy(train_1 - train_0, train_y, test_1 - test_0, test_y),
            f"{name} {init}: pair agreement": agreement}, method.label_length, norms if name == "l_prompt" else {}


def starts(backbone, method_cfg, label_texts) -> dict[str, torch.Tensor | None]:
    """The prefixes to probe, each (layers, 2, 1, kv heads, P, head dim)."""
    from ltune.methods import build_method, method_config

    base = {key: method_cfg[key] for key in method_cfg}
    torch.manual_seed(0)
    random = build_method(method_config({**base, "init": "random"}), backbone, label_texts).prefix_kv(1).detach()
    text = build_method(method_config({**base, "init": "text"}), backbone, label_texts).prefix_kv(1).detach()
    return {"none": None, "random": random, "random x 0.01": 0.01 * random, "text": text}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--data", default="sst2")
    parser.add_argument("--train", type=int, default=384)
    parser.add_argument("--heldout", type=int, default=256)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--l-prefix", action="store_true", help="add the rows of L-prefix's text-started label prefixes")
    parser.add_argument("--l-prompt", action="store_true",
                        help="add the rows of L-prompt's label prompts, started as identity and from text")
    parser.add_argument("--skip-prefix", action="store_true", help="leave out the prefix method's four rows")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)

    from ltune.backbone import load_backbone
    from ltune.config import compose
    from ltune.data import load_task
    from ltune.data.label_texts import label_texts_of
    from ltune.report.summary import machine_name
    from ltune.runtime import machine

    cfg = compose([f"model={args.model}", f"data={args.data}", "method=prefix", *args.overrides])
    backbone = load_backbone(cfg.model, "cuda" if torch.cuda.is_available() else "cpu")
    backbone.model.eval()
    task = load_task(cfg.data, 0)
    if len(task.label_names) != 2:
        print("ltune: the probe is binary; give a data set with two labels", file=sys.stderr)
        return 2
    train, heldout = task.train[: args.train], task.heldout[: args.heldout]
    rows, label_texts = [], label_texts_of(cfg.data, backbone.tokenizer)

    def add(name: str, accuracy: float, clock: float, positions: int = cfg.method.num_virtual_tokens,
            norms: dict | None = None) -> None:
        rows.append({"model": args.model, "data": args.data, "prefix_start": name, "prefix_positions": positions,
                     "train": len(train), "heldout": len(heldout),
                     "probe_heldout_accuracy": round(accuracy, 4), "seconds": round(time.perf_counter() - clock, 1),
                     "machine": machine_name({"environment": {"machine": machine(backbone.device)}}),
                     "prompt_norm": (norms or {}).get("prompt_norm", ""), "word_norm": (norms or {}).get("word_norm", "")})
        print(f"{name:>14}: probe held-out accuracy {accuracy:.3f}", flush=True)

    for name, prefix_kv in ({} if args.skip_prefix else starts(backbone, cfg.method, label_texts)).items():
        clock = time.perf_counter()
        train_x = pooled(backbone, [e.texts[0] for e in train], prefix_kv)
        test_x = pooled(backbone, [e.texts[0] for e in heldout], prefix_kv)
        add(name, probe_accuracy(train_x, [e.label for e in train], test_x, [e.label for e in heldout]), clock)
    label_starts = [("l_prefix", "text")] if args.l_prefix else []
    label_starts += [("l_prompt", "identity"), ("l_prompt", "text")] if args.l_prompt else []
    for method_name, init in label_starts:
        clock = time.perf_counter()
        accuracies, length, norms = label_rows(backbone, label_texts, train, heldout, method_name, init)
        for name, accuracy in accuracies.items():
            add(name, accuracy, clock, length, norms)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Evaluation as the paper defines it (appendix A.4): score every label for every text and
predict the argmax; report accuracy and the benchmark's own metric next to it."""

from __future__ import annotations

import contextlib

import torch
from sklearn.metrics import f1_score, matthews_corrcoef
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ltune.methods.base import TuningMethod

METRICS = ("accuracy", "matthews_corr", "f1", "macro_f1")


def compute_metrics(predictions: list[int], labels: list[int], names: list[str]) -> dict[str, float]:
    unknown = sorted(set(names) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid: {', '.join(METRICS)}")
    out = {"accuracy": sum(int(p == y) for p, y in zip(predictions, labels)) / max(len(labels), 1)}
    if "matthews_corr" in names:
        out["matthews_corr"] = float(matthews_corrcoef(labels, predictions))
    if "f1" in names:
        out["f1"] = float(f1_score(labels, predictions, average="binary", zero_division=0))
    if "macro_f1" in names:
        out["macro_f1"] = float(f1_score(labels, predictions, average="macro", zero_division=0))
    return out


def autocast(device, precision: str):
    """bf16 autocast of the forward pass (CPU or CUDA) for precision=bf16; nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    raise ValueError(f"unknown precision {precision!r}")


@torch.no_grad()
def predict_scores(
    method: TuningMethod, loader: DataLoader, device, desc: str = "eval", precision: str = "fp32", gather=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (N, K) for every text and label, and the gold labels (N,).

    ``gather`` (accelerate's gather_for_metrics) collects every process's share of a
    data-parallel evaluation, without the duplicates that even sharding adds.
    """
    was_training = method.training
    method.eval()
    scores, labels = [], []
    try:
        for batch in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True):
            batch = {k: v.to(device) for k, v in batch.items()}
            with autocast(device, precision):
                batch_scores = method.label_scores(batch).float()
            batch_labels = batch["labels"]
            if gather is not None:
                batch_scores, batch_labels = gather((batch_scores, batch_labels))
            scores.append(batch_scores.cpu())
            labels.append(batch_labels.cpu())
    finally:
        method.train(was_training)
    return torch.cat(scores), torch.cat(labels)


def evaluate(
    method: TuningMethod, loader: DataLoader, device, metric_names: list[str], desc: str = "eval",
    precision: str = "fp32", gather=None,
) -> dict:
    scores, labels = predict_scores(method, loader, device, desc, precision, gather)
    metrics = compute_metrics(scores.argmax(-1).tolist(), labels.tolist(), metric_names)
    metrics["loss"] = float(method.eval_loss(scores, labels))
    metrics["examples"] = len(labels)
    return metrics

"""Evaluation as the paper defines it (appendix A.4): score every label for every text and
predict the argmax; report accuracy and the benchmark's own metric next to it."""

from __future__ import annotations

import contextlib
from typing import NamedTuple

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


class Predictions(NamedTuple):
    scores: torch.Tensor  # (N, K): every label's score for every text
    labels: torch.Tensor  # (N,) gold labels
    ids: torch.Tensor  # (N,) each example's id in its split


@torch.no_grad()
def predict_scores(
    method: TuningMethod, loader: DataLoader, device, desc: str = "eval", precision: str = "fp32", gather=None
) -> Predictions:
    """Every label's score for every text of ``loader``, with gold labels and example ids.

    ``gather`` (accelerate's gather_for_metrics) collects every process's share of a
    data-parallel evaluation, without the duplicates that even sharding adds.
    """
    was_training = method.training
    method.eval()
    scores, labels, ids = [], [], []
    try:
        for batch in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True):
            batch = {k: v.to(device) for k, v in batch.items()}
            with autocast(device, precision):
                batch_scores = method.label_scores(batch).float()
            batch_labels, batch_ids = batch["labels"], batch["ids"]
            if gather is not None:
                batch_scores, batch_labels, batch_ids = gather((batch_scores, batch_labels, batch_ids))
            scores.append(batch_scores.cpu())
            labels.append(batch_labels.cpu())
            ids.append(batch_ids.cpu())
    finally:
        method.train(was_training)
    return Predictions(torch.cat(scores), torch.cat(labels), torch.cat(ids))


def score(method: TuningMethod, predictions: Predictions, metric_names: list[str]) -> dict:
    """The metrics of a set of predictions: argmax accuracy, the benchmark's metrics, the loss."""
    metrics = compute_metrics(predictions.scores.argmax(-1).tolist(), predictions.labels.tolist(), metric_names)
    metrics["loss"] = float(method.eval_loss(predictions.scores, predictions.labels))
    metrics["examples"] = len(predictions.labels)
    return metrics


def evaluate(
    method: TuningMethod, loader: DataLoader, device, metric_names: list[str], desc: str = "eval",
    precision: str = "fp32", gather=None,
) -> dict:
    return score(method, predict_scores(method, loader, device, desc, precision, gather), metric_names)

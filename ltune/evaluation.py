"""Evaluation as the paper defines it (appendix A.4): score every label for every text and
predict the argmax; report accuracy and the benchmark's own metric next to it."""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import NamedTuple

import torch
from sklearn.metrics import balanced_accuracy_score, f1_score, matthews_corrcoef
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ltune.methods.base import TuningMethod
from ltune.metric_names import METRICS
from ltune.runtime import bf16_products


#: Classes whose shares differ by more than this are unequal: the metrics then add balanced accuracy.
UNEQUAL_CLASSES = 0.05


def compute_metrics(predictions: list[int], labels: list[int], names: list[str]) -> dict[str, float]:
    unknown = sorted(set(names) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid: {', '.join(METRICS)}")
    out = {"accuracy": sum(int(p == y) for p, y in zip(predictions, labels)) / max(len(labels), 1),
           # what predicting the most frequent gold class alone scores: the floor accuracy is read against
           "majority_rate": max(Counter(labels).values()) / len(labels) if labels else 0.0}
    if "matthews_corr" in names:
        out["matthews_corr"] = float(matthews_corrcoef(labels, predictions))
    if "f1" in names:
        out["f1"] = float(f1_score(labels, predictions, average="binary", zero_division=0))
    if "macro_f1" in names:
        out["macro_f1"] = float(f1_score(labels, predictions, average="macro", zero_division=0))
    shares = [n / len(labels) for n in Counter(labels).values()] if labels else []
    if shares and max(shares) - min(shares) > UNEQUAL_CLASSES:
        # unequal classes: accuracy rewards the majority class; the mean recall per class does not
        out["balanced_accuracy"] = float(balanced_accuracy_score(labels, predictions))
    return out


def autocast(device, precision: str):
    """bf16 autocast of the forward pass (CPU or CUDA) for precision=bf16; nothing for fp32. On a
    CPU without native bf16, its matrix products run in fp32 (``runtime.bf16_products``)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        stack = contextlib.ExitStack()
        stack.enter_context(torch.autocast(torch.device(device).type, dtype=torch.bfloat16))
        stack.enter_context(bf16_products(device, precision))
        return stack
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
    modes = [(module, module.training) for module in method.modules()]  # each module's own (a frozen model may
    method.eval()                                                        # train without dropout: backbone_dropout)
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
        for module, training in modes:
            module.training = training
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


def in_given_order(predictions: Predictions) -> torch.Tensor:
    """The scores (N, K) with row i belonging to the example whose id is i. Evaluation loaders
    batch texts by length, so the rows ``predict_scores`` returns are in length order; only the
    ids tie them to the texts. The ids must be 0..N-1 (each given text numbered by its position)."""
    order = predictions.ids.argsort()
    if not torch.equal(predictions.ids[order], torch.arange(len(order), dtype=predictions.ids.dtype)):
        raise ValueError("in_given_order needs the ids 0..N-1, each once")
    return predictions.scores[order]


#: Two labels whose scores agree within this on every text are reported as tied.
TIE_RTOL, TIE_ATOL = 1e-5, 1e-6


def tied_label_groups(scores: torch.Tensor, method: TuningMethod | None = None) -> list[list[int]]:
    """Groups (label indices, ascending) of labels that get the same score on every text of
    ``scores`` (N, K), or (for a method that can say so, e.g. L-prefix) the same label
    representation whatever the text. The argmax always gives a tie to the first label of a group,
    so the others are never predicted."""
    k = scores.shape[1]
    same = [[j != i and len(scores) > 0 and torch.allclose(scores[:, i], scores[:, j], TIE_RTOL, TIE_ATOL)
             for j in range(k)] for i in range(k)]
    identical = getattr(method, "identical_label_pairs", None)
    for i, j in (identical() if identical is not None and k == method.num_labels else []):
        same[i][j] = same[j][i] = True
    groups, seen = [], set()
    for i in range(k):  # connected components of the "same" relation
        if i in seen or not any(same[i]):
            continue
        group, todo = set(), [i]
        while todo:
            a = todo.pop()
            if a not in group:
                group.add(a)
                todo += [b for b in range(k) if same[a][b]]
        seen |= group
        groups.append(sorted(group))
    return groups


def tie_warning(groups: list[list[int]], names: list[str], method_name: str, texts: int) -> str | None:
    """The ``ltune: warning:`` line for tied labels (None when there are none)."""
    if not groups:
        return None
    described = "; ".join(
        ", ".join(f"'{names[i]}'" for i in g) + f" (only '{names[g[0]]}' can be predicted)" for g in groups)
    why = ("L-prefix's Z (the paper's) reads only the pooling weights over the label text's positions, so label "
           "texts of the same token length get the same prefix once the softmax settles on the same position"
           if method_name == "l_prefix" else "the method gives these labels the same representation")
    way_out = ("method.z_input=states, method.pool_softmax=false, or label texts of different token lengths"
               if method_name == "l_prefix" else "other label texts or another learning rate")
    return (f"ltune: warning: labels with identical scores on all {texts} texts: {described}; {why}; "
            f"ties go to the first label. Way out: {way_out}")


#: Two labels nearly tie when their scores differ by less than this share of the scores' spread on every
#: text: the argmax between them is then decided by noise, and one of them is seldom predicted.
NEAR_TIE = 0.05


def near_tied_pairs(scores: torch.Tensor, tied: list[list[int]] = ()) -> list[tuple[int, int, float, float]]:
    """(i, j, largest gap, spread) for labels i < j whose scores differ by less than NEAR_TIE x the spread
    (the standard deviation of all scores) on every text of ``scores`` (N, K); exact ties left out."""
    if len(scores) < 2 or scores.shape[1] < 2:
        return []
    spread = float(scores.float().std())
    exact = {(a, b) for group in tied for a in group for b in group}
    found = []
    for i in range(scores.shape[1]):
        for j in range(i + 1, scores.shape[1]):
            gap = float((scores[:, i] - scores[:, j]).abs().max())
            if (i, j) not in exact and spread > 0 and gap < NEAR_TIE * spread:
                found.append((i, j, gap, spread))
    return found


def near_tie_warning(pairs: list[tuple[int, int, float, float]], names: list[str], method_name: str, texts: int) -> str | None:
    """The ``ltune: warning:`` line for labels that nearly tie (None when none do)."""
    if not pairs:
        return None
    described = "; ".join(f"'{names[i]}' and '{names[j]}' (scores at most {gap:.4f} apart, the scores' spread {spread:.4f})"
                          for i, j, gap, spread in pairs)
    way_out = ("method.z_input=states, method.pool_softmax=false, or label texts of different token lengths"
               if method_name == "l_prefix" else "other label texts or another learning rate")
    return (f"ltune: warning: labels whose scores nearly tie on all {texts} texts: {described}; which of them is "
            f"predicted is decided by differences under {NEAR_TIE:.0%} of the spread. Way out: {way_out}")

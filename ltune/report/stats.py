"""The statistics of a comparison (scipy): confidence intervals of a mean over seeds, and paired
tests of two sets of runs on the same dev examples."""

from __future__ import annotations

import math
import statistics

import numpy as np

#: Resamples of the paired bootstrap and of the permutation test.
RESAMPLES = 10_000
#: How a paired comparison is tested (printed in the report next to the figures).
PAIRED_TEST = (
    "paired over dev examples, pooled over seeds: for every example, the share of each side's seeds "
    "that classify it correctly; Δ = mean over examples of (A − B) = difference of the seed-averaged "
    "accuracies. 95% CI: paired bootstrap over examples (10,000 resamples, BCa). p: two-sided paired "
    "permutation test on the same per-example differences (10,000 sign flips). 95% CI, seeds too: "
    "percentile bootstrap that resamples each side's seeds and the dev examples together (10,000 "
    "resamples), so it includes the spread a new set of seeds would bring; with one seed on a side, that "
    "side's seed spread cannot be estimated and is left out."
)


def mean_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float | None, float | None, float | None]:
    """(mean, sample std, CI low, CI high): Student's t interval over independent seeds. One run
    has no spread to estimate: std and interval are None (not 0, which would read as certainty)."""
    from scipy import stats

    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None, None, None
    std = statistics.stdev(values)
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * std / math.sqrt(len(values))
    return mean, std, mean - half, mean + half


def per_seed_correct(runs_predictions: list[dict[int, tuple[int, int]]], ids: list[int]) -> np.ndarray:
    """(runs, examples): 1 where a run's (seed's) prediction for the example equals the gold label."""
    return np.array([[float(p[i][0] == p[i][1]) for i in ids] for p in runs_predictions])


def seeds_and_examples_ci(a: np.ndarray, b: np.ndarray, seed: int = 0, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of Δ = accuracy(A) − accuracy(B) when each side's runs (rows: seeds) and
    the shared dev examples (columns) are resampled with replacement together: a two-level
    bootstrap whose interval widens with the seed-to-seed spread that the examples-only interval
    leaves out."""
    rng = np.random.default_rng(seed)
    n = a.shape[1]
    deltas = np.empty(RESAMPLES)
    for i in range(RESAMPLES):
        examples = rng.integers(0, n, n)
        rows_a, rows_b = rng.integers(0, len(a), len(a)), rng.integers(0, len(b), len(b))
        deltas[i] = a[rows_a].mean(axis=0)[examples].mean() - b[rows_b].mean(axis=0)[examples].mean()
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(deltas, [tail, 100 - tail])
    return float(low), float(high)


def paired_difference(a: np.ndarray, b: np.ndarray, seed: int = 0) -> dict:
    """Δ = mean(a − b) over examples with a bootstrap CI and a sign-flip permutation p-value."""
    from scipy import stats

    diffs = a - b
    delta = float(diffs.mean())
    if not np.any(diffs):
        return {"delta": delta, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0, "examples": len(diffs)}
    rng = np.random.default_rng(seed)
    boot = stats.bootstrap((diffs,), np.mean, n_resamples=RESAMPLES, confidence_level=0.95, method="BCa",
                           random_state=rng)
    perm = stats.permutation_test((diffs,), np.mean, permutation_type="samples", n_resamples=RESAMPLES,
                                  alternative="two-sided", random_state=rng)
    low, high = boot.confidence_interval
    if math.isnan(low) or math.isnan(high):  # BCa degenerates on nearly constant data
        boot = stats.bootstrap((diffs,), np.mean, n_resamples=RESAMPLES, method="percentile", random_state=rng)
        low, high = boot.confidence_interval
    return {"delta": delta, "ci_low": float(low), "ci_high": float(high), "p_value": float(perm.pvalue),
            "examples": len(diffs)}


def first_reaching(log: list[dict], target: float) -> tuple[int | None, float | None]:
    """(step, training seconds) of the first held-out evaluation with accuracy >= target."""
    for record in log:
        if "heldout" in record and record["heldout"]["accuracy"] >= target - 1e-12:
            return record["step"], record.get("elapsed")
    return None, None

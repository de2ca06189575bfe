"""The report's statistics, all from scipy.stats: intervals of a mean over seeds, the test of a
difference over training runs (the primary test), its power, the examples-level test conditional on
the trained runs (secondary), and the noise of a held-out score.

Every figure a report column shows comes from one function here; the texts below say which.
"""

from __future__ import annotations

import math
import statistics
import warnings
from math import comb

import numpy as np

#: Resamples of the examples-level bootstrap and permutation tests, and the most enumerations an
#: exact permutation test over seeds makes (beyond that it samples this many).
RESAMPLES = 10_000
#: Confidence level of every interval and the significance level of every test.
CONFIDENCE = 0.95
#: Power at which the smallest detectable difference is given.
POWER = 0.80
#: Differences for which the report says how many seeds per side would detect them.
TARGET_DIFFERENCES = (0.01, 0.02)
#: Most seeds per side the seed plan looks at.
MOST_SEEDS = 200
#: The smallest two-sided p-value RESAMPLES random permutations give (scipy doubles the one-sided
#: (0 + 1) / (RESAMPLES + 1) when no resample is as extreme as the observed statistic).
MONTE_CARLO_FLOOR = 2 / (RESAMPLES + 1)
#: Fewest pairs with which a paired test over seeds is used: 2^6 sign patterns let an exact
#: sign-flip test reach p = 1/32 < 0.05; with fewer, it cannot show a difference at all.
FEWEST_PAIRS = 6
#: Below this many seeds an interval of a mean is printed but flagged as meaning little.
FEWEST_SEEDS_FOR_AN_INTERVAL = 3

OVER_RUNS_TEST = (
    "The unit is the training run (a seed): what a user who trains again re-draws. Δ = mean over A's seeds "
    "− mean over B's seeds of dev accuracy. Where both sides have the same seed numbers, at least "
    f"{FEWEST_PAIRS} of them, the test is paired by seed (a seed number shares the held-out slice, the "
    "training set, the data order and the negatives across methods): the 95% CI of the mean per-seed "
    "difference (paired t, scipy.stats.ttest_rel) and an exact sign-flip permutation test of it "
    "(scipy.stats.permutation_test, permutation_type='samples'). Otherwise (other seeds, or fewer pairs, "
    "where a sign-flip test cannot reach p < 0.05) the seeds are two independent samples: Welch's 95% CI "
    "(scipy.stats.ttest_ind, equal_var=False) and a two-sided permutation test over the seed labels "
    "(scipy.stats.permutation_test, permutation_type='independent'; exact when there are at most "
    f"{RESAMPLES:,} splits, else {RESAMPLES:,} random ones). 'above'/'below' need both: the CI excludes 0 "
    "and p < 0.05; anything else reads 'level' (no difference shown, not shown equal), and 'level (tests "
    "disagree)' where one of the two shows a difference and the other does not (a few seeds with one "
    "outlying difference, typically: more seeds settle it). Where every seed shows the same difference "
    "there is no t interval, and p decides. 'smallest p' is the least p-value the exact test can give "
    "with these seed counts."
)
#: What the report's words are when the interval and the permutation p-value do not agree.
TESTS_DISAGREE = "level (tests disagree)"
POWER_TEXT = (
    f"Detectable Δ: the difference a two-sided t-test at 5% (the same Welch or paired test) finds with "
    f"{POWER:.0%} power, given the observed seed standard deviations: power = P(|T| > t_crit) with T "
    "noncentral t (scipy.stats.nct) of noncentrality Δ/SE and the test's degrees of freedom, solved for Δ. "
    f"Seeds for 0.01 / 0.02: the fewest seeds per side (equal on both) with {POWER:.0%} power for that Δ "
    f"at the same standard deviations ('> {MOST_SEEDS}' beyond that). The standard deviations of a few "
    "seeds are themselves uncertain: read these as a plan's starting point, not a guarantee."
)
EXAMPLES_TEST = (
    "Examples-level (secondary, conditional on these trained runs: it takes each side's seeds as fixed "
    "and resamples only the dev examples, so it says nothing about training again): for every dev "
    "example, the share of each side's seeds that classify it correctly; 95% CI: paired bootstrap over "
    f"examples ({RESAMPLES:,} resamples, BCa); p: paired sign-flip permutation test ({RESAMPLES:,} "
    f"random flips; when no flip is as extreme as the observed difference, p is at the floor of two-sided "
    f"{RESAMPLES:,} flips and prints as ≤ 2/{RESAMPLES + 1:,})."
)


def metric_range(metric: str) -> tuple[float, float]:
    """The values a dev metric can take: Matthews correlation in [-1, 1], the others in [0, 1]."""
    return (-1.0, 1.0) if metric == "matthews_corr" else (0.0, 1.0)


def mean_ci(values: list[float], bounds: tuple[float, float] = (0.0, 1.0)) -> dict:
    """Mean, sample std and the Student's t 95% interval of the mean over independent seeds, clipped
    to the metric's ``bounds`` (``clipped`` says whether it was). One run has no spread to estimate:
    std and interval are None (not 0, which would read as certainty)."""
    from scipy import stats

    mean = statistics.fmean(values)
    if len(values) < 2:
        return {"mean": mean, "std": None, "ci_low": None, "ci_high": None, "clipped": False}
    std = statistics.stdev(values)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1) * std / math.sqrt(len(values))
    low, high = max(mean - half, bounds[0]), min(mean + half, bounds[1])
    return {"mean": mean, "std": std, "ci_low": low, "ci_high": high,
            "clipped": (low, high) != (mean - half, mean + half)}


def _mean_difference(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _mean_of(x, axis=-1):
    return np.mean(x, axis=axis)


def uses_paired_test(seeds_a: list[int], seeds_b: list[int]) -> bool:
    """Paired by seed when both sides ran the same seed numbers, at least FEWEST_PAIRS of them."""
    return sorted(seeds_a) == sorted(seeds_b) and len(set(seeds_a)) >= FEWEST_PAIRS


def over_runs_test(a: dict[int, float], b: dict[int, float]) -> dict:
    """The primary test of Δ = mean(A) − mean(B) over training runs; ``a`` and ``b`` map each seed
    to that run's dev figure. See OVER_RUNS_TEST. With one run on a side there is no test."""
    from scipy import stats

    x, y = np.array(list(a.values())), np.array(list(b.values()))
    delta = float(x.mean() - y.mean())
    result = {"delta": delta, "test": None, "ci_low": None, "ci_high": None, "p_value": None, "p_exact": None,
              "smallest_p": None, "reads": "untested (one run on a side)"}
    if len(x) < 2 or len(y) < 2:
        return result
    with warnings.catch_warnings():  # seeds a few dev examples apart: scipy's note on precision, not an error
        warnings.simplefilter("ignore", RuntimeWarning)
        if uses_paired_test(list(a), list(b)):
            seeds = sorted(a)
            differences = np.array([a[s] - b[s] for s in seeds])
            samples, statistic, permutation, splits = (differences,), _mean_of, "samples", 2 ** len(seeds)
            spread, name = np.ptp(differences) > 0, "paired t + {}sign-flip"
            if spread:
                ci = stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).confidence_interval(CONFIDENCE)
        else:
            samples, statistic, permutation, splits = (x, y), _mean_difference, "independent", comb(len(x) + len(y), len(x))
            spread, name = np.ptp(x) > 0 or np.ptp(y) > 0, "Welch + {}permutation"
            if spread:
                ci = stats.ttest_ind(x, y, equal_var=False).confidence_interval(CONFIDENCE)
    low = high = delta  # no spread: every seed shows the same difference
    if spread:
        low, high = max(float(ci.low), -1.0), min(float(ci.high), 1.0)
    p = float(stats.permutation_test(samples, statistic, permutation_type=permutation, vectorized=True,
                                     n_resamples=RESAMPLES, alternative="two-sided", random_state=0).pvalue)
    exact = splits <= RESAMPLES
    result.update({"test": name.format("exact " if exact else ""), "ci_low": low, "ci_high": high, "p_value": p,
                   "p_exact": exact, "smallest_p": min(1.0, 2 / splits) if exact else MONTE_CARLO_FLOOR})
    result["reads"] = reading(result)
    return result


#: The words of a difference shown by the raw tests but not after the family's Holm correction.
BEFORE_CORRECTION = "level (before correction only)"


def reading(test: dict, adjusted_p: float | None = None) -> str:
    """The words of a test's figures: 'above'/'below' need both the interval to exclude 0 and the p-value
    (Holm-adjusted where given) below 5%; 'level (tests disagree)' where one of the two raw tests shows a
    difference and the other does not; 'level (before correction only)' where both raw tests show it and
    the adjusted p does not; else 'level'. Without an interval (every seed the same difference) p decides."""
    p = test.get("p_value")
    if p is None:
        return "untested (one run on a side)"
    alpha = 1 - CONFIDENCE
    p_shows = p < alpha
    low, high = test.get("ci_low"), test.get("ci_high")
    interval_shows = (low > 0 or high < 0) if low is not None and low != high else p_shows
    if not (interval_shows and p_shows):
        return TESTS_DISAGREE if interval_shows or p_shows else "level"
    if adjusted_p is not None and adjusted_p >= alpha:
        return BEFORE_CORRECTION
    return "above" if test["delta"] > 0 else "below"


def _power(effect: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Power of a two-sided t-test at 5% when the true Δ is ``effect`` standard errors."""
    from scipy import stats

    critical = stats.t.ppf(0.5 + CONFIDENCE / 2, df)
    # the far tail (a sign error) underflows to NaN in scipy's nct for large effects: it is 0 there
    return stats.nct.sf(critical, df, effect) + np.nan_to_num(stats.nct.cdf(-critical, df, effect), nan=0.0)


def _welch_df(var_a: float, n_a, var_b: float, n_b):
    se_a, se_b = var_a / n_a, var_b / n_b
    return (se_a + se_b) ** 2 / (se_a ** 2 / (n_a - 1) + se_b ** 2 / (n_b - 1))


def seed_power(a: dict[int, float], b: dict[int, float]) -> dict:
    """The smallest Δ this test detects with POWER, and the seeds per side that would detect each of
    TARGET_DIFFERENCES, at the observed seed spread (POWER_TEXT). None where a side has one run."""
    from scipy import optimize

    empty = {"detectable_difference": None, **{f"seeds_for_{t:g}": None for t in TARGET_DIFFERENCES}}
    if len(a) < 2 or len(b) < 2:
        return empty
    n = np.arange(2, MOST_SEEDS + 1)
    if uses_paired_test(list(a), list(b)):
        var = statistics.variance([a[s] - b[s] for s in sorted(a)])
        se, se_n = math.sqrt(var / len(a)), np.sqrt(var / n)
        df, df_n = len(a) - 1, n - 1.0
    else:
        var_a, var_b = statistics.variance(a.values()), statistics.variance(b.values())
        se, se_n = math.sqrt(var_a / len(a) + var_b / len(b)), np.sqrt((var_a + var_b) / n)
        if se > 0:
            df, df_n = _welch_df(var_a, len(a), var_b, len(b)), _welch_df(var_a, n, var_b, n)
    if se == 0:  # no spread: any difference is seen with two seeds
        return {"detectable_difference": 0.0, **{f"seeds_for_{t:g}": 2 for t in TARGET_DIFFERENCES}}
    detectable = optimize.brentq(lambda d: float(_power(np.array(d / se), np.array(df))) - POWER, 1e-12, 1e3 * se)
    result = {"detectable_difference": detectable}
    for target in TARGET_DIFFERENCES:
        enough = np.flatnonzero(_power(target / se_n, df_n) >= POWER)
        result[f"seeds_for_{target:g}"] = int(n[enough[0]]) if len(enough) else f"> {MOST_SEEDS}"
    return result


def per_seed_correct(runs_predictions: list[dict[int, tuple[int, int]]], ids: list[int]) -> np.ndarray:
    """(runs, examples): 1 where a run's (seed's) prediction for the example equals the gold label."""
    return np.array([[float(p[i][0] == p[i][1]) for i in ids] for p in runs_predictions])


def examples_level_test(a: np.ndarray, b: np.ndarray, seed: int = 0) -> dict:
    """The secondary test (EXAMPLES_TEST): Δ = mean over examples of (a − b), where a and b are each
    side's seed-averaged correctness per example, with a BCa bootstrap CI and a sign-flip p-value.
    ``p_at_floor``: the p-value is the smallest the random flips can give (MONTE_CARLO_FLOOR)."""
    from scipy import stats

    diffs = a - b
    result = {"examples": len(diffs), "examples_delta": float(diffs.mean())}
    if not np.any(diffs):
        return {**result, "examples_ci_low": 0.0, "examples_ci_high": 0.0, "examples_p": 1.0, "p_at_floor": False}
    rng = np.random.default_rng(seed)
    boot = stats.bootstrap((diffs,), np.mean, n_resamples=RESAMPLES, confidence_level=CONFIDENCE, method="BCa",
                           random_state=rng)
    perm = stats.permutation_test((diffs,), _mean_of, permutation_type="samples", vectorized=True,
                                  n_resamples=RESAMPLES, alternative="two-sided", random_state=rng)
    low, high = boot.confidence_interval
    if math.isnan(low) or math.isnan(high):  # BCa degenerates on nearly constant data
        boot = stats.bootstrap((diffs,), np.mean, n_resamples=RESAMPLES, method="percentile", random_state=rng)
        low, high = boot.confidence_interval
    p = float(perm.pvalue)
    return {**result, "examples_ci_low": float(low), "examples_ci_high": float(high), "examples_p": p,
            "p_at_floor": p <= MONTE_CARLO_FLOOR + 1e-15}


def binomial_se(accuracy: float, examples: int, seeds: int = 1) -> float:
    """Standard error of an accuracy measured on ``examples`` held-out examples, averaged over
    ``seeds`` independent held-out slices: sqrt(p (1 − p) / (n k))."""
    return math.sqrt(accuracy * (1 - accuracy) / (examples * seeds))


def first_reaching(log: list[dict], target: float) -> tuple[int | None, float | None]:
    """(step, training seconds) of the first held-out evaluation with accuracy >= target."""
    for record in log:
        if "heldout" in record and record["heldout"]["accuracy"] >= target - 1e-12:
            return record["step"], record.get("elapsed")
    return None, None


HOLM_TEXT = (
    "One report, one family: the p-values of the report's comparisons are adjusted together with Holm's "
    "step-down method (the i-th smallest of m raw p-values is multiplied by m − i + 1, then made non-decreasing "
    "and capped at 1), separately for each of the three tests a row gives (all runs, stuck rates, runs that "
    "learn). The words follow the adjusted p: a difference shown only before the correction reads 'level "
    "(before correction only)'. A pair confounded with its run conditions is not read, so it is left out of "
    "the family. The intervals are the unadjusted 95% ones."
)


def holm(p_values: list) -> list:
    """Holm's step-down adjustment of a family of p-values (None entries are not in the family and stay
    None): sorted ascending, the i-th (from 0) is multiplied by m − i, a running maximum keeps the
    adjusted values in the raw order's rank order, and each is capped at 1."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted, running, m = list(p_values), 0.0, len(present)
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def rate_interval(k: int, n: int) -> tuple[float, float]:
    """The exact (Clopper-Pearson) 95% interval of a rate of k in n (scipy.stats.binomtest)."""
    from scipy import stats

    ci = stats.binomtest(k, n).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return float(ci.low), float(ci.high)


def rates_test(k_a: int, n_a: int, k_b: int, n_b: int) -> float:
    """Two-sided Fisher exact test of two rates, k_a in n_a against k_b in n_b (scipy.stats.fisher_exact)."""
    from scipy import stats

    return float(stats.fisher_exact([[k_a, n_a - k_a], [k_b, n_b - k_b]]).pvalue)


def stratified_test(a: dict, b: dict) -> dict:
    """Δ and its test when each side's runs come from several strata (run conditions): ``a`` and ``b`` map
    a stratum to that side's dev figures there (strata with runs on both sides only). Δ is the weighted
    mean of the within-stratum differences, weights n_a n_b / (n_a + n_b); the p-value is a permutation
    test that shuffles the A/B labels only within each stratum (exact when at most RESAMPLES label
    assignments exist, else RESAMPLES random ones); the 95% CI is Student's t with the within-stratum
    pooled variance (df = runs − 2 x strata)."""
    from scipy import stats

    strata = sorted(a)
    values = [np.concatenate([np.asarray(a[s], float), np.asarray(b[s], float)]) for s in strata]
    sizes = [(len(a[s]), len(b[s])) for s in strata]
    weights = np.array([na * nb / (na + nb) for na, nb in sizes])

    def statistic(labels):  # labels: per stratum, a boolean mask of the A runs
        diffs = [v[m].mean() - v[~m].mean() for v, m in zip(values, labels)]
        return float(np.dot(weights, diffs) / weights.sum())

    observed = [np.arange(len(v)) < na for v, (na, _) in zip(values, sizes)]
    delta = statistic(observed)
    total = math.prod(comb(len(v), na) for v, (na, _) in zip(values, sizes))
    exact = total <= RESAMPLES
    if exact:
        import itertools

        choices = [[np.isin(np.arange(len(v)), c) for c in itertools.combinations(range(len(v)), na)]
                   for v, (na, _) in zip(values, sizes)]
        null = np.array([statistic(list(labels)) for labels in itertools.product(*choices)])
    else:
        rng = np.random.default_rng(0)
        null = np.array([statistic([rng.permutation(m) for m in observed]) for _ in range(RESAMPLES)])
    extreme = np.sum(np.abs(null) >= abs(delta) - 1e-12)
    p = float(extreme / len(null)) if exact else float(min(1.0, (extreme + 1) / (len(null) + 1) * 1.0))
    residuals = np.concatenate([np.concatenate([v[m] - v[m].mean(), v[~m] - v[~m].mean()])
                                for v, m in zip(values, observed)])
    df = len(residuals) - 2 * len(strata)
    result = {"delta": delta, "p_value": p, "p_exact": exact, "smallest_p": (min(1.0, 2 / total) if exact else MONTE_CARLO_FLOOR),
              "test": f"stratified ({len(strata)} run conditions) {'exact ' if exact else ''}permutation + t",
              "ci_low": None, "ci_high": None}
    if df > 0 and np.any(residuals):
        pooled = float(np.sum(residuals ** 2) / df)
        se = math.sqrt(pooled * float(np.sum(weights ** 2 * np.array([1 / na + 1 / nb for na, nb in sizes])))) / weights.sum()
        half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df)) * se
        result.update({"ci_low": max(delta - half, -1.0), "ci_high": min(delta + half, 1.0)})
    return result

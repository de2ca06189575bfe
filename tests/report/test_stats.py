"""The report's statistics against answers known by construction or by enumeration."""

import itertools
import math

import numpy as np
import pytest

from ltune.report.stats import (RESAMPLES, binomial_se, examples_level_test, mean_ci, over_runs_test, seed_power,
                                uses_paired_test)
from ltune.report.tables import p_text


def simulated_cell(rng, examples=872, seeds=3, means=(0.837, 0.880), seed_stds=(0.024, 0.009)):
    """A cell shaped like SST-2 L-prefix vs prefix on minilm: one dev set of 872 examples (a latent
    difficulty u per example, shared by every run), each seed of a method a skill q ~ N(mean, std)
    that gets the examples with u < q right. Returns the per-seed correctness of A and B and the
    true difference across seeds on this dev set (the expectation over seeds, by many draws)."""
    difficulty = np.sort(rng.random(examples))

    def runs(mean, std, n):
        skills = rng.normal(mean, std, n)
        return difficulty[None, :] < skills[:, None]

    # the expected accuracy over seeds: the share of examples below a skill, averaged over skills
    truth = [np.mean(np.searchsorted(difficulty, rng.normal(m, s, 20_000))) / examples for m, s in zip(means, seed_stds)]
    return runs(means[0], seed_stds[0], seeds), runs(means[1], seed_stds[1], seeds), truth[0] - truth[1]


def test_the_interval_over_runs_covers_the_across_seed_difference_where_the_examples_interval_does_not():
    """200 simulated SST-2-shaped cells, 3 seeds a side: the Welch interval over the seeds' dev
    accuracies covers the true across-seed difference at least 90% of the time; an interval over
    dev examples (seed-averaged per example, normal approximation of the report's bootstrap) takes
    the three seeds as fixed and covers far less."""
    rng = np.random.default_rng(0)
    over_runs = examples = 0
    cells = 200
    for _ in range(cells):
        a, b, truth = simulated_cell(rng)
        found = over_runs_test(dict(zip((1, 2, 3), a.mean(axis=1))), dict(zip((1, 2, 3), b.mean(axis=1))))
        assert found["test"] == "Welch + exact permutation"  # 3 pairs are too few for the paired test
        over_runs += found["ci_low"] <= truth <= found["ci_high"]
        per_example = a.mean(axis=0) - b.mean(axis=0)
        half = 1.96 * per_example.std(ddof=1) / math.sqrt(len(per_example))
        examples += abs(per_example.mean() - truth) <= half
    print(f"coverage over runs {over_runs / cells:.3f}, over examples {examples / cells:.3f}")
    assert over_runs / cells >= 0.90
    assert examples / cells < 0.80


def test_the_permutation_p_over_seed_labels_is_exact_on_an_enumerable_case():
    """3 + 3 seeds with other seed numbers: 20 ways to split six runs into two sides of three. Every
    A run beats every B run, so the observed split and its mirror are the two most extreme:
    two-sided p = 2/20, which no 3 + 3 permutation test can go below. The Welch interval excludes
    0, but the report's words need both, so it reads 'level', saying that the two disagree."""
    a, b = {1: 0.80, 2: 0.83, 3: 0.81}, {4: 0.70, 5: 0.72, 6: 0.71}
    values, observed = [*a.values(), *b.values()], np.mean(list(a.values())) - np.mean(list(b.values()))
    splits = [np.mean([values[i] for i in side]) - np.mean([values[i] for i in range(6) if i not in side])
              for side in itertools.combinations(range(6), 3)]
    by_hand = 2 * min(np.mean([s >= observed - 1e-12 for s in splits]), np.mean([s <= observed + 1e-12 for s in splits]))
    found = over_runs_test(a, b)
    assert found["test"] == "Welch + exact permutation" and found["p_exact"]
    assert found["p_value"] == pytest.approx(by_hand) == pytest.approx(0.1)
    assert found["smallest_p"] == pytest.approx(0.1)
    assert found["ci_low"] > 0 and found["reads"] == "level (tests disagree)"


def test_a_sign_flip_p_below_5_percent_with_an_interval_across_0_reads_level_saying_the_tests_disagree():
    """Ten paired seeds, A ahead on every one: the exact sign-flip p is 2/1024, the least it can be.
    One seed far ahead (+0.10 where the other nine are +0.01) widens the t interval across 0."""
    b = {seed: 0.70 for seed in range(1, 11)}
    a = {seed: 0.71 for seed in range(1, 10)} | {10: 0.80}
    found = over_runs_test(a, b)
    assert found["test"] == "paired t + exact sign-flip"
    assert found["p_value"] == pytest.approx(2 / 1024) and found["ci_low"] < 0 < found["ci_high"]
    assert found["reads"] == "level (tests disagree)"


def test_with_no_spread_the_permutation_p_alone_decides():
    """Every seed shows the same difference: there is no t interval to weigh, so six paired seeds
    (exact sign-flip p = 2/64) read 'above', never 'tests disagree'."""
    found = over_runs_test({s: 0.72 for s in range(1, 7)}, {s: 0.70 for s in range(1, 7)})
    assert found["p_value"] == pytest.approx(2 / 64) and found["reads"] == "above"


def test_level_alone_when_neither_test_shows_a_difference():
    a, b = {s: 0.70 + 0.01 * (s % 3) for s in range(1, 9)}, {s: 0.70 + 0.01 * ((s + 1) % 3) for s in range(1, 9)}
    found = over_runs_test(a, b)
    assert found["p_value"] > 0.05 and found["ci_low"] < 0 < found["ci_high"] and found["reads"] == "level"


def test_the_welch_interval_is_the_textbook_one():
    a, b = {1: 0.80, 2: 0.86, 3: 0.83, 4: 0.81}, {5: 0.75, 6: 0.76, 7: 0.74}
    from scipy import stats

    va, vb = np.var(list(a.values()), ddof=1) / 4, np.var(list(b.values()), ddof=1) / 3
    df = (va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 2)
    delta = np.mean(list(a.values())) - np.mean(list(b.values()))
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    found = over_runs_test(a, b)
    assert (found["ci_low"], found["ci_high"]) == pytest.approx((delta - half, delta + half))
    assert found["p_exact"] and found["smallest_p"] == pytest.approx(2 / math.comb(7, 4))


def test_seeds_with_the_same_numbers_are_paired_from_six_pairs_on():
    """Six seeds a side with the same numbers: the sign-flip test enumerates 2^6 patterns; with every
    difference positive the p-value is 2/64 (by hand) and, with the paired t interval above 0, the
    difference reads 'above'. Five pairs stay unpaired (a sign flip could not reach 0.05)."""
    a = {s: 0.80 + 0.01 * s for s in range(1, 7)}
    b = {s: a[s] - 0.02 - 0.002 * s for s in range(1, 7)}
    found = over_runs_test(a, b)
    assert found["test"] == "paired t + exact sign-flip"
    differences = [a[s] - b[s] for s in a]
    flips = [np.mean([d * sign for d, sign in zip(differences, signs)])
             for signs in itertools.product((1, -1), repeat=6)]
    by_hand = 2 * np.mean([f >= np.mean(differences) - 1e-12 for f in flips])
    assert found["p_value"] == pytest.approx(by_hand) == pytest.approx(2 / 64)
    assert found["ci_low"] > 0 and found["reads"] == "above"
    assert not uses_paired_test([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) and not uses_paired_test([1, 2, 3], [4, 5, 6])


def test_one_run_on_a_side_is_untested():
    found = over_runs_test({1: 0.8}, {1: 0.7, 2: 0.72})
    assert found["p_value"] is None and found["reads"].startswith("untested")
    assert seed_power({1: 0.8}, {1: 0.7, 2: 0.72})["detectable_difference"] is None


def test_detectable_difference_and_seed_plan_follow_the_normal_limit():
    """With many seeds the t-test's power is the normal one: the smallest difference found with 80%
    power at 5% is (1.960 + 0.842) standard errors, and n per side for Δ is about
    (2.802)^2 (σa² + σb²) / Δ² (SST-2's seed stds 0.024 and 0.009: 51.5 for 0.01, 12.9 for 0.02;
    the t quantiles add a seed or two)."""
    rng = np.random.default_rng(1)
    a = dict(enumerate(0.84 + 0.024 * rng.standard_normal(400)))
    b = dict(enumerate(0.88 + 0.009 * rng.standard_normal(400), start=1000))
    sd_a, sd_b = np.std(list(a.values()), ddof=1), np.std(list(b.values()), ddof=1)
    se = math.sqrt(sd_a ** 2 / 400 + sd_b ** 2 / 400)
    found = seed_power(a, b)
    assert found["detectable_difference"] == pytest.approx(2.802 * se, rel=0.01)
    normal = 2.802 ** 2 * (sd_a ** 2 + sd_b ** 2)
    assert normal / 0.01 ** 2 <= found["seeds_for_0.01"] <= normal / 0.01 ** 2 + 3
    assert normal / 0.02 ** 2 <= found["seeds_for_0.02"] <= normal / 0.02 ** 2 + 3
    assert seed_power({1: 0.8, 2: 0.8}, {3: 0.7, 4: 0.7}) == {"detectable_difference": 0.0, "seeds_for_0.01": 2,
                                                             "seeds_for_0.02": 2}


def test_an_accuracy_interval_is_clipped_to_zero_and_one_and_says_so():
    """Issue 21, item 7: two seeds at 0.95 and 0.99 gave [0.716, 1.224]."""
    found = mean_ci([0.95, 0.99])
    assert found["ci_low"] == pytest.approx(0.97 - 12.7062 * 0.02, abs=1e-3)  # t(0.975, 1) x std / sqrt(2)
    assert found["ci_high"] == 1.0 and found["clipped"]
    assert not mean_ci([0.80, 0.82, 0.81])["clipped"]
    assert mean_ci([-0.9, -0.99], (-1.0, 1.0))["ci_low"] == -1.0  # Matthews correlation: [-1, 1]


def test_a_monte_carlo_p_at_its_floor_prints_as_the_floor_not_as_a_measured_value():
    """No random sign flip of 290 gains and 10 ties is as extreme as the observed mean: scipy's
    two-sided p is then 2/(R+1) (the issue's 'p = 0.0002'), printed as a bound."""
    a = np.ones(300)
    b = np.zeros(300)
    b[:10] = 1
    found = examples_level_test(a, b)
    assert found["examples_p"] == pytest.approx(2 / (RESAMPLES + 1)) and found["p_at_floor"]
    assert p_text(found["examples_p"]) == f"≤ 2/{RESAMPLES + 1:,}"
    assert p_text(0.1, exact=True) == "0.1000" and p_text(2 / (RESAMPLES + 1), exact=True) == "0.0002"


def test_the_held_out_standard_error_is_binomial():
    assert binomial_se(0.9, 500) == pytest.approx(math.sqrt(0.9 * 0.1 / 500))
    assert binomial_se(0.9, 500, seeds=2) == pytest.approx(math.sqrt(0.9 * 0.1 / 1000))

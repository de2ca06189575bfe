"""Comparisons that are fair by construction, on scripted runs with a known answer: arms on disjoint
machines are confounded, arms on shared machines are compared within them, stuck runs are their own
outcome, a report's tests are one family (Holm), and a run cut off by its budget is flagged."""

import csv

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ltune.report import report
from ltune.report.stats import holm, stratified_test
from tests.test_report import fake_run

CPU = {"device": "cpu", "precision": "fp32", "threads": 1, "torch": "2.13.0+cpu", "transformers": "5.5.0",
       "peft": "0.18.0", "machine": {"cpu": "AMD EPYC", "cpu_capability": "AVX512", "cores": 2, "native_bf16": True}}
GPU = {"device": "cuda", "precision": "fp32", "threads": 16, "torch": "2.11.0+cu130", "transformers": "5.5.0",
       "peft": "0.18.0", "machine": {"cpu": "Intel Xeon", "cpu_capability": "AVX512", "cores": 16, "native_bf16": True,
                                     "gpu": "NVIDIA H200"}}
LABELS = [i % 2 for i in range(100)]


def right_on(n):
    """Dev predictions right on the first ``n`` of 100 balanced examples (wrong on the rest)."""
    return [(y if i < n else 1 - y, y) for i, y in enumerate(LABELS)]


STUCK = [(0, y) for y in LABELS]  # every dev text on class 0: accuracy 0.5


def pairs(folder):
    return {(r["a"], r["b"]): r for r in csv.DictReader((folder / "paired.csv").open())}


def test_holm_on_a_hand_computed_family():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> 0.06 (kept monotone)
    assert holm([0.01, 0.04, 0.03, None, 0.005]) == pytest.approx([0.03, 0.06, 0.06, None, 0.02], abs=1e-12)
    assert holm([0.5, 0.9]) == [1.0, 1.0][:0] + [pytest.approx(1.0), pytest.approx(1.0)]
    assert holm([]) == [] and holm([None]) == [None]


def test_arms_on_disjoint_machines_read_confounded_not_below(tmp_path):
    """L-prefix on a GPU, prefix on a CPU, six seeds each, prefix 0.1 higher on every seed: without the
    machines this reads 'below'; with them it reads 'confounded with the machine and torch', names what
    differs, and stays out of the Holm family."""
    for seed in range(1, 7):
        fake_run(tmp_path, "minilm", "sst2", "l_prefix", seed, 0.70 + 0.001 * seed, environment=GPU)
        fake_run(tmp_path, "minilm", "sst2", "prefix", seed, 0.80 + 0.002 * seed, environment=CPU)
    text = report(tmp_path).read_text()
    row = pairs(tmp_path)[("l_prefix", "prefix")]
    assert row["reads"] == "confounded" and row["in_words"] == "confounded with the machine, torch and threads"
    assert "machine: A NVIDIA H200 vs B AMD EPYC (AVX512)" in row["conditions_differ"]
    assert "torch: A 2.11.0+cu130 vs B 2.13.0+cpu" in row["conditions_differ"]
    assert row["p_value_holm"] == "" and float(row["delta"]) < 0
    assert "**confounded with the machine, torch and threads**" in text
    assert "l_prefix: seeds 1 2 3 4 5 6 (6 of 6)" in text  # the balance plan: what to run again, and where


def test_arms_that_share_machines_are_paired_within_them(tmp_path):
    """Seeds 1-6 of both arms on the CPU, seeds 7-8 of B on the GPU (0.3 higher there): the test pairs the six
    seeds whose two runs share the conditions and leaves 7-8 out, so the GPU's shift does not enter it."""
    for seed in range(1, 9):
        fake_run(tmp_path, "minilm", "sst2", "l_prefix", seed, 0.80 + 0.001 * seed, environment=CPU)
        on_gpu = seed > 6
        fake_run(tmp_path, "minilm", "sst2", "prefix", seed, 0.80 + 0.002 * seed + (0.3 if on_gpu else 0),
                 environment=GPU if on_gpu else CPU)
    report(tmp_path)
    row = pairs(tmp_path)[("l_prefix", "prefix")]
    assert row["design"].startswith("paired within run conditions: the 6 seeds") and "seeds 7 8 left out" in row["design"]
    assert float(row["delta"]) == pytest.approx(-0.001 * 3.5, abs=1e-9)  # mean of -0.001 x (1..6)
    assert "machine: A AMD EPYC (AVX512) vs B AMD EPYC (AVX512) + NVIDIA H200" in row["conditions_differ"]


def test_stuck_runs_are_their_own_outcome(tmp_path):
    """Six of twelve L-prompt runs never leave class 0; the other six learn as well as prompt tuning. Over all
    runs L-prompt is below; the stuck rates differ (6/12 vs 0/12, Fisher p = 0.0137); among the runs that
    learn the two are level, and the words say so."""
    learned = [80, 81, 79, 80, 82, 81, 79, 80, 82, 81, 80, 79]
    for seed in range(1, 13):
        a = STUCK if seed <= 6 else right_on(learned[seed - 1])
        fake_run(tmp_path, "minilm", "sst2", "l_prompt", seed, sum(p == y for p, y in a) / 100, predictions=a)
        b = right_on(learned[(seed + 3) % 12])
        fake_run(tmp_path, "minilm", "sst2", "prompt", seed, sum(p == y for p, y in b) / 100, predictions=b)
    text = report(tmp_path).read_text()
    row = pairs(tmp_path)[("l_prompt", "prompt")]
    assert (row["stuck_a"], row["stuck_b"]) == ("6/12", "0/12")
    assert float(row["stuck_p"]) == pytest.approx(scipy_stats.fisher_exact([[6, 6], [0, 12]]).pvalue) == pytest.approx(0.0137, abs=1e-4)
    assert row["reads"] == "below" and row["learning_reads"] == "level"
    assert row["in_words"] == "below, through stuck runs (stuck 6/12 vs 0/12); level among the runs that learn"
    assert "stuck 6/12 [0.21, 0.79], the others 0.802" in text
    results = {r["method"]: r for r in csv.DictReader((tmp_path / "results.csv").open())}
    assert results["l_prompt"]["stuck_seeds"] == "1 2 3 4 5 6" and results["prompt"]["stuck"] == "0"


def test_a_difference_shown_before_the_correction_only_says_so(tmp_path):
    """Two pairs in one report: each raw p is 1/32 (six paired seeds, every difference one way), under 0.05;
    Holm doubles the smaller... both to 2/32 = 0.0625, so neither reads above or below."""
    for seed in range(1, 7):
        for method, twin, base in (("l_prefix", "prefix", 0.7), ("l_prompt", "prompt", 0.6)):
            fake_run(tmp_path, "minilm", "sst2", method, seed, base + 0.05 + 0.001 * seed * seed)
            fake_run(tmp_path, "minilm", "sst2", twin, seed, base)
    report(tmp_path)
    rows = pairs(tmp_path)
    for key in (("l_prefix", "prefix"), ("l_prompt", "prompt")):
        assert float(rows[key]["p_value"]) == pytest.approx(2 / 64)
        assert float(rows[key]["p_value_holm"]) == pytest.approx(4 / 64)
        assert rows[key]["reads"] == "level (before correction only)"
        assert rows[key]["family_size"] == "2"


def test_a_cell_cut_off_by_its_budget_is_flagged(tmp_path):
    """Runs that hit their 100-step budget with their best held-out step at 95 are budget-capped; runs that
    stopped early, or hit the budget with an early best step, are not."""
    for seed in (1, 2):
        fake_run(tmp_path, "minilm", "sst2", "prefix", seed, 0.8, stopped={"step": 100, "budget_steps": 100, "reason": "epochs"},
                 selection={"accuracy": 0.8, "best_step": 95})
        fake_run(tmp_path, "minilm", "sst2", "prompt", seed, 0.8, stopped={"step": 100, "budget_steps": 100, "reason": "epochs"},
                 selection={"accuracy": 0.8, "best_step": 40})
        fake_run(tmp_path, "minilm", "sst2", "l_prefix", seed, 0.8, stopped={"step": 60, "budget_steps": 100,
                                                                             "reason": "early_stopping"},
                 selection={"accuracy": 0.8, "best_step": 59})
    text = report(tmp_path).read_text()
    assert "| epochs (2) | 95 | 0.800 (accuracy) | **budget-capped 2/2** |" in text  # prefix
    assert "| epochs (2) | 40 | 0.800 (accuracy) | – |" in text  # prompt
    assert "0.800 ± 0.000 [0.800, 0.800] (n=2); n=2: too few seeds for an interval to mean much; budget-capped 2/2 |" in text
    assert pairs(tmp_path)[("l_prefix", "prefix")]["capped_b"] == "2/2"


def test_a_stratified_test_removes_a_machine_shift_and_matches_the_plain_test_on_one_stratum():
    rng = np.random.default_rng(0)
    a_x, b_x = list(0.80 + rng.normal(0, 0.01, 4)), list(0.75 + rng.normal(0, 0.01, 4))
    shift = 0.3
    a_y, b_y = [v + shift for v in 0.80 + rng.normal(0, 0.01, 3)], [v + shift for v in 0.75 + rng.normal(0, 0.01, 5)]
    found = stratified_test({"x": a_x, "y": a_y}, {"x": b_x, "y": b_y})
    w_x, w_y = 4 * 4 / 8, 3 * 5 / 8
    expected = (w_x * (np.mean(a_x) - np.mean(b_x)) + w_y * (np.mean(a_y) - np.mean(b_y))) / (w_x + w_y)
    assert found["delta"] == pytest.approx(expected) and 0 < found["ci_low"] < found["delta"] < found["ci_high"] < 0.1
    # C(8,4) x C(8,3) = 3,920 assignments; the observed one is the most extreme (its mirror, less so with noise)
    assert found["p_exact"] and 1 / 3920 - 1e-12 <= found["p_value"] <= 2 / 3920 + 1e-12
    one = stratified_test({"x": a_x}, {"x": b_x})
    plain = scipy_stats.permutation_test((np.array(a_x), np.array(b_x)), lambda x, y, axis=-1: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                                         permutation_type="independent", vectorized=True, alternative="two-sided")
    assert one["p_value"] == pytest.approx(plain.pvalue)


def test_what_a_joint_search_chose_is_a_result_and_unequal_tuning_budgets_are_named(tmp_path):
    """A joint search chose objective=softmax and label_first texts for L-prefix; prefix searched its rate
    alone. The chosen axes are results of the tuning, like the rate: the two are still twins, paired, and
    the row names the tuning budgets that differ (16 search runs against 4)."""
    import json

    sweep = tmp_path / "sweep"
    for seed in range(1, 7):
        fake_run(sweep / "final", "smollm2", "sst2", "l_prefix", seed, 0.80 + 0.001 * seed, name=f"l_prefix_s{seed}",
                 settings={"objective": "softmax"}, data_settings={"label_text_kind": "label_first"})
        fake_run(sweep / "final", "smollm2", "sst2", "prefix", seed, 0.82, name=f"prefix_s{seed}")
    axes = {"trainer.lr": [0.001, 0.01], "method.objective": ["pairs", "softmax"],
            "data.label_text_kind": ["configured", "label_first"], "method.map_lr_scale": [1, 10]}
    (sweep / "tuning.json").write_text(json.dumps({"cells": [
        {"name": "l_prefix", "cell": ["method=l_prefix"], "search_space": [0.001, 0.01], "chosen_lr": 0.01,
         "search_seeds": [0], "seeds": list(range(1, 7)), "searched": True, "reused_runs": [], "heldout_score": {},
         "axes": axes, "search_configurations": 16, "points": [], "chosen": {"trainer.lr": 0.01}},
        {"name": "prefix", "cell": ["method=prefix"], "search_space": [0.001, 0.003, 0.01, 0.03], "chosen_lr": 0.01,
         "search_seeds": [0], "seeds": list(range(1, 7)), "searched": True, "reused_runs": [],
         "heldout_score": {"0.001": 0.8, "0.003": 0.81, "0.01": 0.82, "0.03": 0.8}}]}))
    report(sweep)
    row = pairs(sweep)[("l_prefix", "prefix")]
    assert row["kind"] == "L-method vs vanilla twin" and (row["search_a"], row["search_b"]) == ("16", "4")
    assert row["conditions_differ"] == "tuning budget: A 16 search runs vs B 4 (their first grids differ: an unequal tuning budget)"
    results = {r["method"]: r for r in csv.DictReader((sweep / "results.csv").open())}
    assert results["l_prefix"]["variant"] == "" and results["l_prefix"]["search_runs"] == "16"


def test_the_accuracy_table_names_the_majority_class_rate_beside_accuracy(tmp_path):
    imbalanced = [(0, 0)] * 95 + [(0, 1)] * 5  # predicts the majority class everywhere
    for seed in (1, 2):
        fake_run(tmp_path, "minilm", "tickets", "prefix", seed, 0.95, predictions=imbalanced)
    text = report(tmp_path).read_text()
    assert "| method | minilm / tickets (majority class 0.950) |" in text
    assert "0.950 ± 0.000 [0.950, 0.950] (n=2); n=2: too few seeds for an interval to mean much; stuck 2/2" in text

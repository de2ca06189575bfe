import csv
import json

import numpy as np
import pytest

from ltune.errors import LtuneError
from ltune.report import report, time_to_fraction
from ltune.report.collect import collect, replicate_groups
from ltune.report.stats import examples_level_test


def fake_run(folder, model, data, method, seed, accuracy, mcc=None, curve=(0.5, 0.7, 0.8), settings=None, name=None,
             predictions=None, stopped=None, trainer=None, machine=None, selection=None, data_settings=None,
             sizes=None, environment=None):
    run = folder / (name or f"{model}_{data}_{method}_{seed}")
    (run / ".hydra").mkdir(parents=True)
    config = {"seed": seed, "run_name": f"{model}_{data}_{method}_s{seed}", "output_root": str(folder),
              "model": {"name": model}, "data": {"name": data, **(data_settings or {})},
              "method": {"name": method, **(settings or {})},
              **({"trainer": trainer} if trainer else {})}
    (run / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    dev = {"accuracy": accuracy, "loss": 0.5, **({"matthews_corr": mcc} if mcc is not None else {})}
    log = [{"step": 10 * (i + 1), "loss": 1.0, "elapsed": 2.0 * (i + 1),
            "heldout": {"accuracy": acc, "loss": 1 - acc}} for i, acc in enumerate(curve)]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    (run / "metrics.json").write_text(json.dumps({
        "method": method, "model": model, "data": data, "seed": seed, "trainable_params": 100, "total_params": 1000,
        "dev": dev, "steps": 30, "peak_memory_mb": 10.0, "selection": selection or {"accuracy": max(curve), "best_step": 30},
        "stopped": stopped or {"step": 30, "budget_steps": 100, "reason": "max_steps"},
        "timing": {"seconds_per_step": 0.1, "train_seconds": 6.0, "eval_seconds_per_example": 0.01,
                   "total_seconds": 10.0, "padding_efficiency": 0.9},
        **({"environment": {"machine": machine}} if machine else {}),
        **({"environment": environment} if environment else {}),
        **({"sizes": sizes} if sizes else {}),
    }))
    if predictions is not None:
        (run / "predictions.jsonl").write_text("".join(
            json.dumps({"id": i, "label": y, "prediction": p, "scores": [0.0, 0.0]}) + "\n"
            for i, (p, y) in enumerate(predictions)))
    return run


def test_report_tables_plots_and_failed_runs(tmp_path):
    fake_run(tmp_path, "bert", "cola", "l_prefix", 1, 0.80, mcc=0.40)
    fake_run(tmp_path, "bert", "cola", "l_prefix", 2, 0.82, mcc=0.44)
    fake_run(tmp_path, "bert", "cola", "prefix", 1, 0.79, mcc=0.38, curve=(0.2, 0.9, 0.9))
    fake_run(tmp_path, "minilm", "rte", "prompt", 1, 0.55)
    failed = tmp_path / "failed_job"
    failed.mkdir()
    (failed / "failed.json").write_text(json.dumps({"status": "failed", "error": "trainer.lr must be positive"}))
    (tmp_path / "killed_job" / ".hydra").mkdir(parents=True)

    path = report(tmp_path)
    text = path.read_text()
    # mean 0.81, std 0.0141; t(0.975, 1) = 12.706 -> half width 0.127
    assert ("0.810 ± 0.014 [0.683, 0.937] (n=2); n=2: too few seeds for an interval to mean much; paper 0.812, "
            "Δ -0.002") in text  # L-prefix, BERT, CoLA
    # One run has no spread: no "± 0.000 [m, m]", which would read as certainty.
    assert "0.790 (n=1: no spread, no interval); paper 0.807, Δ -0.017" in text  # prefix
    assert "0.550 (n=1: no spread, no interval) |" in text  # no paper cell for minilm
    assert "± 0.000" not in text
    assert "## Matthews correlation" in text and "0.420 ± 0.028" in text
    assert "trainer.lr must be positive" in text and "killed_job" in text and "unfinished" in text
    rows = (tmp_path / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 and rows[0].startswith("model,data,method,variant,runs")
    assert len(list(csv.DictReader((tmp_path / "runs.csv").open()))) == 4
    for png in ("heldout_loss.png", "heldout_accuracy_vs_time.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    # Prefix reached 0.9 held-out at step 20; L-prefix's curve never gets to that vanilla plateau.
    assert "| bert / cola | l_prefix | 100 | 0.100 | 10.00 | 0.90 | 30 | 6.0 | – | – | 0/2 |" in text


def test_time_to_95_percent_of_best():
    log = [{"step": s, "elapsed": s / 10, "heldout": {"accuracy": a}} for s, a in [(10, 0.5), (20, 0.78), (30, 0.8)]]
    assert time_to_fraction(log) == (20, 2.0)  # 0.78 >= 0.95 * 0.8


def test_report_needs_finished_runs(tmp_path):
    with pytest.raises(LtuneError, match="no finished runs"):
        report(tmp_path)


def test_report_averages_only_seed_replicates_of_one_config(tmp_path):
    """Five prefix runs: two replicates at the default lr with 16 tokens, and three single runs that
    differ in lr or virtual tokens. They are four groups, never one "n=5" cell (issue 9, defect 5)."""
    from ltune.report.collect import default_of

    lr = default_of("method.lr", "prefix")  # the schema's default (it follows the held-out evidence)
    other = round(10 * lr, 6)
    specs = [(1, 0.70, lr, 16), (2, 0.72, lr, 16), (1, 0.40, other, 16), (1, 0.10, lr, 4), (1, 0.20, other, 4)]
    for i, (seed, acc, run_lr, tokens) in enumerate(specs):
        fake_run(tmp_path, "minilm", "sst2", "prefix", seed, acc, settings={"lr": run_lr, "num_virtual_tokens": tokens},
                 name=f"run{i}")
    text = report(tmp_path).read_text()
    assert "(n=5)" not in text
    # Groups are named by their settings that depart from the schema's defaults (prefix's default
    # lr and 16 tokens): the default group has the method's plain name.
    assert "| Prefix (P) | 0.710 ± 0.014" in text
    assert "| Prefix (P) [method.num_virtual_tokens=4] | 0.100 (n=1" in text
    assert f"| Prefix (P) [method.lr={other}, method.num_virtual_tokens=4] | 0.200 (n=1" in text
    assert len((tmp_path / "results.csv").read_text().splitlines()) == 1 + 4


def paired_csv(folder):
    return list(csv.DictReader((folder / "paired.csv").open()))


def test_paired_twins_on_the_same_examples(tmp_path):
    """L-prefix right on 60 of 100 examples in both seeds, prefix on 50 (the first 50): Δ = +0.10.
    Over runs (the primary test) two seeds a side cannot show it: the exact permutation p over the
    six splits of four runs is 2/6, and the row reads 'level'. Given these runs, the examples-level
    interval excludes 0 (secondary)."""
    labels = [i % 2 for i in range(100)]
    right = lambda n: [(y if i < n else 1 - y, y) for i, y in enumerate(labels)]
    for seed in (1, 2):
        fake_run(tmp_path, "minilm", "sst2", "l_prefix", seed, 0.6, predictions=right(60), settings={"z_input": "pooling"})
        fake_run(tmp_path, "minilm", "sst2", "prefix", seed, 0.5, predictions=right(50))
    fake_run(tmp_path, "minilm", "sst2", "l_prefix", 3, 0.6, predictions=right(60), settings={"z_input": "states"},
             name="ablation")
    text = report(tmp_path).read_text()
    rows = paired_csv(tmp_path)
    twin = next(r for r in rows if r["b"] == "prefix")
    assert float(twin["delta"]) == pytest.approx(0.10) and twin["test"] == "Welch + exact permutation"
    assert float(twin["p_value"]) == pytest.approx(2 / 6) and twin["reads"] == "level"
    assert float(twin["examples_ci_low"]) > 0 and float(twin["examples_p"]) < 0.01
    ablation = next(r for r in rows if r["kind"].startswith("method.z_input changed"))
    assert ablation["a"] == "l_prefix [method.z_input=states]" and ablation["b"] == "l_prefix"
    assert float(ablation["delta"]) == 0.0 and ablation["reads"].startswith("untested") and len(rows) == 2
    # prefix at 0.5 on balanced labels never left the majority class: both its runs are stuck
    assert ("| minilm / sst2 | l_prefix | prefix | **level (stuck 0/2 vs 2/2); no test among the runs that learn (a side "
            "has fewer than two)** | +0.1000 | [+0.1000, +0.1000] | 0.3333 / 0.3333 |") in text
    assert (tmp_path / "paired_differences.png").read_bytes()[:4] == b"\x89PNG"


def test_a_methods_default_runs_keep_one_name_on_tasks_with_and_without_ablations(tmp_path):
    """CoLA has only paper-default L-prefix runs; SST-2 also has two ablations. The default runs of
    both tasks are one table row, and each ablation is named by what it changes, nothing more."""
    for data in ("cola", "sst2"):
        fake_run(tmp_path, "minilm", data, "l_prefix", 1, 0.6, settings={"z_input": "pooling", "head_bias": False})
    fake_run(tmp_path, "minilm", "sst2", "l_prefix", 1, 0.7, settings={"z_input": "states", "head_bias": False},
             name="z_states")
    fake_run(tmp_path, "minilm", "sst2", "l_prefix", 1, 0.8, settings={"z_input": "pooling", "head_bias": True},
             name="head_bias")
    text = report(tmp_path).read_text()
    rows = [line for line in text.splitlines() if line.startswith("| L-prefix (LT-P)")]
    assert rows[0].startswith("| L-prefix (LT-P) | 0.600") and rows[0].count("0.600 (n=1") == 2
    assert any(r.startswith("| L-prefix (LT-P) [method.head_bias=True] | – | 0.800") for r in rows)
    assert any(r.startswith("| L-prefix (LT-P) [method.z_input=states] | – | 0.700") for r in rows)


def test_every_ablation_of_a_cell_is_paired_with_the_default(tmp_path):
    """Three ablations beside the paper default in one cell: three paired rows. (The pairing loop
    swapped its own outer variable when it put the default on side B, so after the first ablation
    the default was lost and the others were silently left unpaired.)"""
    labels = [i % 2 for i in range(40)]
    right = lambda n: [(y if i < n else 1 - y, y) for i, y in enumerate(labels)]
    default = {"z_input": "pooling", "head_bias": False, "pool_softmax": True}
    fake_run(tmp_path, "minilm", "sst2", "l_prefix", 1, 0.5, predictions=right(20), settings=default)
    for name, change in [("bias", {"head_bias": True}), ("raw", {"pool_softmax": False}), ("states", {"z_input": "states"})]:
        fake_run(tmp_path, "minilm", "sst2", "l_prefix", 1, 0.6, predictions=right(24), settings={**default, **change},
                 name=name)
    report(tmp_path)
    rows = paired_csv(tmp_path)
    assert sorted(r["a"] for r in rows) == ["l_prefix [method.head_bias=True]", "l_prefix [method.pool_softmax=False]",
                                           "l_prefix [method.z_input=states]"]
    assert all(r["b"] == "l_prefix" and float(r["delta"]) == pytest.approx(0.1) for r in rows)


def test_examples_level_statistics():
    rng = np.random.default_rng(0)
    a = (rng.random(400) < 0.7).astype(float)
    b = a.copy()
    assert examples_level_test(a, b)["examples_p"] == 1.0
    b[:40] = 1 - b[:40]  # B flips 40 examples: about as many gains as losses
    result = examples_level_test(a, b)
    assert result["examples_ci_low"] < result["examples_delta"] < result["examples_ci_high"]
    assert result["examples"] == 400 and not result["p_at_floor"]


def test_search_runs_of_a_tuning_sweep_are_not_averaged_and_broken_runs_are_listed(tmp_path):
    fake_run(tmp_path / "search", "minilm", "rte", "prompt", 0, 0.99, name="minilm_rte_prompt_lr0.1_s0")
    fake_run(tmp_path / "final", "minilm", "rte", "prompt", 1, 0.55)
    broken = fake_run(tmp_path / "final", "minilm", "rte", "prompt", 2, 0.56)
    (broken / "metrics.json").write_text('{"method": "prompt", "mo')  # a crash mid-write
    text = report(tmp_path).read_text()
    assert "1 finished runs (and 1 learning-rate search runs, not averaged)" in text
    assert "0.550 (n=1" in text and "0.99" not in text.split("## Accuracy")[1].split("##")[0]
    assert f"| {broken} | unreadable |" in text


def test_search_runs_carry_the_variant_they_tuned_in_runs_csv(tmp_path):
    """Bug: runs.csv named variants from replicate groups only, so every search run had an empty
    variant: a text-start prefix search read as the random-start one. A search is now named by the
    replicates it tuned, even before they are trained."""
    for lr in (0.01, 0.1):  # the random start (the default): searched and replicated
        fake_run(tmp_path / "search", "smollm2", "sst2", "prefix", 101, 0.6, trainer={"lr": lr}, name=f"random_lr{lr}")
    for seed in (1, 2):
        fake_run(tmp_path / "final", "smollm2", "sst2", "prefix", seed, 0.55, trainer={"lr": 0.1}, name=f"random_s{seed}")
    for lr in (0.01, 0.1):  # the text start: searched only, replicates to come
        fake_run(tmp_path / "search", "smollm2", "sst2", "prefix", 101, 0.9, trainer={"lr": lr},
                 settings={"init": "text"}, name=f"text_lr{lr}")
    report(tmp_path)
    variants = {row["run"]: row["variant"] for row in csv.DictReader((tmp_path / "runs.csv").open())}
    assert variants == {"final/random_s1": "", "final/random_s2": "",
                        "search/random_lr0.01": "", "search/random_lr0.1": "",
                        "search/text_lr0.01": "method.init=text", "search/text_lr0.1": "method.init=text"}
    fake_run(tmp_path / "final", "smollm2", "sst2", "prefix", 1, 0.85, trainer={"lr": 0.01}, settings={"init": "text"},
             name="text_s1")
    report(tmp_path)
    rows = list(csv.DictReader((tmp_path / "runs.csv").open()))
    assert {row["run"]: row["variant"] for row in rows if "text" in row["run"]} == {
        "final/text_s1": "method.init=text", "search/text_lr0.01": "method.init=text",
        "search/text_lr0.1": "method.init=text"}


def test_stopping_table_prints_small_learning_rates_as_given():
    from ltune.report import stopping_table

    row = {"model": "minilm", "data": "sst2", "method": "l_prompt", "variant": "", "lr": 0.0003, "budget_steps": 1000,
           "steps": 400.0, "stop_reasons": "early_stopping (3)", "best_step": 250.0, "heldout_best_mean": 0.653}
    assert "| minilm / sst2 | l_prompt | 0.0003 | 1000 |" in stopping_table([row])


def test_a_seed_trained_twice_is_one_replicate_not_two(tmp_path):
    """Bug: two finished runs of one seed (the same command run twice) were averaged as two
    replicates: n=3 for seeds 1 1 2, a smaller std and interval, and the paired test counted the
    seed twice. The repeat is now listed, not averaged in."""
    fake_run(tmp_path, "minilm", "sst2", "prefix", 1, 0.70, name="a_first")
    fake_run(tmp_path, "minilm", "sst2", "prefix", 1, 0.70, name="b_again")
    fake_run(tmp_path, "minilm", "sst2", "prefix", 2, 0.80, name="c_seed2")
    text = report(tmp_path).read_text()
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [(r["runs"], r["seeds"]) for r in rows] == [("2", "1 2")]
    assert "0.750 ± 0.071" in text and "(n=2)" in text
    assert "b_again | repeated seed | seed 1 with the same settings as" in text


def test_an_l_method_with_raw_pooling_scores_is_named_so_and_its_twin_pair_explained(tmp_path):
    """Issue 44, item 5: an L-prefix run with method.pool_softmax=false, alone in its cell, was shown as plain
    L-prefix and its comparison with prefix dropped without a word."""
    for seed in (1, 2, 3):
        fake_run(tmp_path, "minilm", "demo", "l_prefix", seed, 0.6, settings={"pool_softmax": False})
        fake_run(tmp_path, "minilm", "demo", "prefix", seed, 0.7)
    text = report(tmp_path).read_text()
    assert "| L-prefix (LT-P) [method.pool_softmax=False] |" in text
    assert "l_prefix [method.pool_softmax=False] vs prefix not paired: they depart from their methods' paper settings" in text


def test_an_l_method_is_not_paired_with_a_twin_trained_with_other_settings(tmp_path):
    """Bug: an L-method and its twin were paired whenever both had their default method settings,
    even when trained or scored differently (here 300 vs 1,000 steps): the "L-method vs vanilla
    twin" test then compared two protocols. Such twins are now named in the report, not tested."""
    preds = [(i % 2, i % 2) for i in range(20)]
    for seed in (1, 2):
        fake_run(tmp_path, "minilm", "sst2", "l_prefix", seed, 0.7, predictions=preds, trainer={"max_steps": 300})
        fake_run(tmp_path, "minilm", "sst2", "prefix", seed, 0.8, predictions=preds, trainer={"max_steps": 1000})
        fake_run(tmp_path, "minilm", "sst2", "l_prompt", seed, 0.7, predictions=preds, trainer={"max_steps": 300})
        fake_run(tmp_path, "minilm", "sst2", "prompt", seed, 0.8, predictions=preds, trainer={"max_steps": 300})
    text = report(tmp_path).read_text()
    paired = paired_csv(tmp_path)
    assert [(r["a"], r["b"]) for r in paired] == [("l_prompt", "prompt")]
    assert "minilm / sst2: l_prefix vs prefix not paired; their runs differ in trainer.max_steps" in text


def test_the_report_names_the_machines_its_timings_come_from(tmp_path):
    epyc = {"cpu": "AMD EPYC", "cpu_capability": "AVX2", "cores": 2, "native_bf16": False}
    xeon = {"cpu": "Intel Xeon", "cpu_capability": "AVX512", "cores": 2, "native_bf16": True}
    fake_run(tmp_path, "minilm", "rte", "prefix", 1, 0.55, machine=epyc)
    fake_run(tmp_path, "minilm", "rte", "prefix", 2, 0.56, machine=epyc)
    fake_run(tmp_path, "minilm", "rte", "prompt", 1, 0.52, machine=xeon)
    fake_run(tmp_path, "minilm", "rte", "prompt", 2, 0.53)
    text = report(tmp_path).read_text()
    assert ("Timings measured on AMD EPYC (AVX2, no native bf16), 2 cores (2 runs); Intel Xeon (AVX512, native bf16), "
            "2 cores (1 runs); a machine not recorded (1 runs). Seconds from different machines are not comparable.") in text


def test_where_the_runs_stopped_gives_the_best_score_of_the_metric_they_selected_on(tmp_path):
    for seed, (mcc, acc) in enumerate([(0.30, 0.70), (0.20, 0.72)], start=1):
        fake_run(tmp_path, "minilm", "cola", "prefix", seed, 0.7, selection={
            "metric": "matthews_corr", "score": mcc, "accuracy": acc, "best_step": 30})
    text = report(tmp_path).read_text()
    assert "| 30 | 0.250 (matthews_corr) |" in text  # the mean MCC, not the accuracy at those evaluations


def test_twins_trained_at_the_same_non_default_settings_are_paired(tmp_path):
    """Issue 21, item 8: l_prefix and prefix both at 150 steps, beside default runs of both, gave no
    paired test and named no setting. Twins that share every setting but the method are paired
    (150 with 150, default with default); an L-method whose twin ran otherwise is listed unpaired
    with the setting that differs."""
    preds = [(i % 2, i % 2) for i in range(20)]
    for seed in (1, 2):
        for method in ("l_prefix", "prefix"):
            fake_run(tmp_path, "minilm", "sst2", method, seed, 0.7, predictions=preds, trainer={"max_steps": 300},
                     name=f"{method}_default_{seed}")
            fake_run(tmp_path, "minilm", "sst2", method, seed, 0.6, predictions=preds, trainer={"max_steps": 150},
                     name=f"{method}_150_{seed}")
        fake_run(tmp_path, "minilm", "sst2", "l_prompt", seed, 0.6, predictions=preds, trainer={"max_steps": 150})
        fake_run(tmp_path, "minilm", "sst2", "prompt", seed, 0.6, predictions=preds, trainer={"max_steps": 300})
    text = report(tmp_path).read_text()
    twins = [(r["a"], r["b"]) for r in paired_csv(tmp_path) if r["kind"] == "L-method vs vanilla twin"]
    assert sorted(twins) == [("l_prefix", "prefix"), ("l_prefix [trainer.max_steps=150]", "prefix [trainer.max_steps=150]")]
    assert "minilm / sst2: l_prompt vs prompt not paired; their runs differ in trainer.max_steps" in text


def test_a_comparison_of_any_two_methods_on_request(tmp_path):
    for seed in (1, 2, 3):
        fake_run(tmp_path, "minilm", "sst2", "peft_lora", seed, 0.84 + 0.01 * seed)
        fake_run(tmp_path, "minilm", "sst2", "prefix", seed, 0.83 + 0.005 * seed)
    report(tmp_path)
    assert not (tmp_path / "paired.csv").exists()
    from ltune.commands.report import report_command

    report_command([str(tmp_path), "compare=peft_lora:prefix"])  # the command line's way to ask
    (row,) = paired_csv(tmp_path)
    assert (row["kind"], row["a"], row["b"]) == ("requested", "peft_lora", "prefix")
    assert float(row["delta"]) == pytest.approx(0.02) and row["seeds_for_0.01"] and row["detectable_difference"]


@pytest.mark.parametrize("args, message", [
    (["compare=peft_lora"], "bad compare pair 'peft_lora'; give two different methods as A:B"),
    (["compare=prefix:prefix"], "bad compare pair 'prefix:prefix'"),
    (["compare=lora:prefix"], "unknown method 'lora' in compare=; valid: "),
    (["compare=a:b", "compare=c:d"], "usage: ltune report"),
    (["with="], "usage: ltune report"),
    (["with=a", "with=b"], "usage: ltune report"),
])
def test_a_bad_compare_request_is_one_line_before_any_run_is_read(tmp_path, args, message):
    from ltune.commands.report import report_command

    with pytest.raises(LtuneError, match=message.replace("(", r"\(")):
        report_command([str(tmp_path / "no_such_folder"), *args])


def test_the_report_flags_a_class_a_run_never_predicts(tmp_path):
    """Issue 21, item 2: an L-prefix run that ties two label texts never predicts the second."""
    labels = [i % 3 for i in range(30)]
    never_travel = [(0 if y == 2 else y, y) for y in labels]
    names = {"label_names": ["sports", "cooking", "travel"]}
    fake_run(tmp_path, "minilm", "demo", "l_prefix", 1, 0.67, predictions=never_travel, data_settings=names)
    fake_run(tmp_path, "minilm", "demo", "l_prefix", 2, 1.0, predictions=[(y, y) for y in labels], data_settings=names)
    text = report(tmp_path).read_text()
    assert "## Classes a run never predicts" in text and "- minilm / demo / l_prefix: s1: travel" in text
    runs = {r["seed"]: r for r in csv.DictReader((tmp_path / "runs.csv").open())}
    assert runs["1"]["never_predicted"] == "travel" and runs["2"]["never_predicted"] == ""


def test_an_interval_past_the_metrics_range_is_clipped_and_marked(tmp_path):
    """Issue 21, item 7: two seeds at 0.95 and 0.99 printed [0.716, 1.224]."""
    fake_run(tmp_path, "minilm", "sst2", "prefix", 1, 0.95)
    fake_run(tmp_path, "minilm", "sst2", "prefix", 2, 0.99)
    text = report(tmp_path).read_text()
    assert "0.970 ± 0.028 [0.716, 1.000]† (n=2); n=2: too few seeds for an interval to mean much" in text
    assert "1.224" not in text


def test_a_tuned_sweeps_runs_csv_choices_and_reused_replicate(tmp_path):
    """A sweep that reused its winning search run as replicate seed 1: runs.csv names every run's
    role; the accuracy cell and the comparison carry the reuse mark; the learning-rate table gives
    the margin, the held-out SE from the search runs' held-out size, and the edge flag."""
    epyc = {"cpu": "AMD EPYC", "cpu_capability": "AVX2", "cores": 2, "native_bf16": False}
    for lr, heldout in ((0.01, 0.70), (0.03, 0.71)):
        fake_run(tmp_path / "search", "minilm", "rte", "prefix", 1, 0.6, name=f"minilm_rte_prefix_lr{lr:g}_s1",
                 settings={"lr": lr}, selection={"metric": "accuracy", "score": heldout, "accuracy": heldout,
                                                 "best_step": 20}, sizes={"heldout": 249}, machine=epyc)
    for seed in (2, 3):
        fake_run(tmp_path / "final", "minilm", "rte", "prefix", seed, 0.6 + 0.01 * seed, settings={"lr": 0.03},
                 name=f"minilm_rte_prefix_s{seed}", machine=epyc)
    (tmp_path / "tuning.json").write_text(json.dumps({"cells": [{
        "cell": ["method=prefix"], "name": "minilm_rte_prefix", "search_space": [0.01, 0.03],
        "heldout_score": {"0.01": 0.70, "0.03": 0.71}, "chosen_lr": 0.03, "search_seeds": [1], "seeds": [1, 2, 3],
        "searched": True, "reused_runs": ["search/minilm_rte_prefix_lr0.03_s1"]}]}))
    text = report(tmp_path).read_text()
    runs = {r["run"]: r for r in csv.DictReader((tmp_path / "runs.csv").open())}
    assert {k: r["role"] for k, r in runs.items()} == {
        "final/minilm_rte_prefix_s2": "replicate", "final/minilm_rte_prefix_s3": "replicate",
        "search/minilm_rte_prefix_lr0.01_s1": "search", "search/minilm_rte_prefix_lr0.03_s1": "search + replicate (reused)"}
    reused = runs["search/minilm_rte_prefix_lr0.03_s1"]
    assert (reused["lr"], reused["best_heldout_score"], reused["best_heldout_step"], reused["stop_reason"]) == (
        "0.03", "0.71", "20", "max_steps")
    assert reused["dev_accuracy"] == "0.6" and reused["machine"].startswith("AMD EPYC")
    assert "(n=3); ‡ 1 reused search run" in text
    se = (0.71 * 0.29 / 249) ** 0.5
    assert f"| 0.03 | 0.010 | {se:.3f} (249) | at top edge; margin < SE; reused search run |" in text


def test_a_folder_of_report_outputs_without_runs_says_so(tmp_path):
    """studies/offline_table holds results.csv and tuning.json but no run folders."""
    (tmp_path / "results.csv").write_text("model\n")
    (tmp_path / "tuning.json").write_text('{"cells": []}')
    with pytest.raises(LtuneError, match=r"holds a report's outputs \(results.csv, tuning.json\) but not the run folders"):
        report(tmp_path)


def test_runs_from_before_a_setting_existed_join_the_runs_that_have_its_default(tmp_path):
    # l_prefix seeds 1-2 were trained before method.init existed; seeds 3-4 saved it as the default.
    # They are one group of four replicates, and the text-started runs a group of their own.
    for seed in (1, 2):
        fake_run(tmp_path, "minilm", "sst2", "l_prefix", seed, 0.8, name=f"old_s{seed}")
    for seed in (3, 4):
        fake_run(tmp_path, "minilm", "sst2", "l_prefix", seed, 0.8, settings={"init": "random"}, name=f"new_s{seed}")
    for seed in (1, 2):
        fake_run(tmp_path, "minilm", "sst2", "l_prefix", seed, 0.9, settings={"init": "text"}, name=f"text_s{seed}")
    groups = replicate_groups(collect(tmp_path)[0])
    assert sorted((key[3], len(runs)) for key, runs in groups.items()) == [("", 4), ("method.init=text", 2)]


def test_twins_started_the_same_way_are_paired_and_differently_started_twins_are_not(tmp_path):
    """Both with method.init=text: twins. An L-prefix started from text beside a prefix started random
    is no twin pair, even when each is its method's only group; its name says how it departs (issue 44,
    item 5), and the report says why the two are not paired."""
    preds = [(i % 2, i % 2) for i in range(20)]
    for seed in (1, 2, 3):
        fake_run(tmp_path / "text", "smollm2", "sst2", "l_prefix", seed, 0.6, predictions=preds, settings={"init": "text"})
        fake_run(tmp_path / "text", "smollm2", "sst2", "prefix", seed, 0.8, predictions=preds, settings={"init": "text"})
        fake_run(tmp_path / "mixed", "smollm2", "sst2", "l_prefix", seed, 0.6, predictions=preds, settings={"init": "text"})
        fake_run(tmp_path / "mixed", "smollm2", "sst2", "prefix", seed, 0.5, predictions=preds)
    report(tmp_path / "text")
    (row,) = paired_csv(tmp_path / "text")
    assert (row["kind"], row["a"], row["b"]) == ("L-method vs vanilla twin", "l_prefix [method.init=text]",
                                                 "prefix [method.init=text]")
    text = report(tmp_path / "mixed").read_text()
    assert not (tmp_path / "mixed" / "paired.csv").exists()
    assert ("smollm2 / sst2: l_prefix [method.init=text] vs prefix not paired: they depart from their methods' paper "
            "settings differently (A: method.init=text; B: none); compare=l_prefix:prefix pairs them anyway") in text


def test_a_requested_comparison_takes_groups_that_depart_from_their_defaults(tmp_path):
    preds = [(i % 2, i % 2) for i in range(20)]
    for seed in (1, 2, 3):
        fake_run(tmp_path, "smollm2", "sst2", "l_prompt", seed, 0.6, predictions=preds, settings={"init": "text"},
                 name=f"l_prompt_text_{seed}")
        fake_run(tmp_path, "smollm2", "sst2", "l_prompt", seed, 0.5, predictions=preds, name=f"l_prompt_{seed}")
        fake_run(tmp_path, "smollm2", "sst2", "prompt", seed, 0.85, predictions=preds)
    report(tmp_path, compare=[("l_prompt", "prompt")])
    rows = {(r["kind"], r["a"], r["b"]) for r in paired_csv(tmp_path)}
    assert ("L-method vs vanilla twin", "l_prompt", "prompt") in rows
    assert ("requested", "l_prompt [method.init=text]", "prompt") in rows
    assert ("L-method vs vanilla twin", "l_prompt [method.init=text]", "prompt") not in rows


def test_a_report_with_the_runs_of_another_sweep(tmp_path):
    """An arm run later (text/) tested against the table it belongs to (table/): the report is
    written in the arm's folder, its runs.csv names the table's runs from there."""
    from ltune.commands.report import report_command

    preds = [(i % 2, i % 2) for i in range(20)]
    for seed in (1, 2, 3):
        fake_run(tmp_path / "text", "smollm2", "sst2", "l_prompt", seed, 0.6, predictions=preds, settings={"init": "text"})
        fake_run(tmp_path / "table", "smollm2", "sst2", "prompt", seed, 0.85, predictions=preds)
    report_command([str(tmp_path / "text"), f"with={tmp_path / 'table'}", "compare=l_prompt:prompt"])
    (row,) = paired_csv(tmp_path / "text")
    assert (row["kind"], row["a"], row["b"]) == ("requested", "l_prompt [method.init=text]", "prompt")
    assert float(row["delta"]) == pytest.approx(-0.25)
    with (tmp_path / "text" / "runs.csv").open() as handle:
        runs = sorted(r["run"] for r in csv.DictReader(handle))
    assert runs[0].startswith("../table/smollm2_sst2_prompt_") and len(runs) == 6
    assert "(with the runs of" in (tmp_path / "text" / "report.md").read_text()
    assert not (tmp_path / "table" / "report.md").exists()


@pytest.mark.parametrize("other", ["text", "text/inner", ".", "missing"])
def test_folders_that_overlap_or_are_missing_are_one_line(tmp_path, other):
    from ltune.commands.report import report_command

    fake_run(tmp_path / "text" / "inner", "smollm2", "sst2", "prompt", 1, 0.85)
    message = "is not a folder" if other == "missing" else "overlap, so their runs would count twice"
    with pytest.raises(LtuneError, match=message):
        report_command([str(tmp_path / "text"), f"with={tmp_path / other}"])
    assert not (tmp_path / "text" / "report.md").exists()


def test_a_job_that_failed_once_and_finished_later_is_finished_not_failed(tmp_path):
    """Issue 44, item 10: the report averaged runs it also listed as failed (a failed.json left beside the
    metrics.json of a run that a later sweep finished)."""
    run = fake_run(tmp_path, "minilm", "sst2", "prefix", 1, 0.8)
    fake_run(tmp_path, "minilm", "sst2", "prefix", 2, 0.7)
    (run / "failed.json").write_text(json.dumps({"status": "failed", "error": "locked by another process"}))
    text = report(tmp_path).read_text()
    assert "2 finished runs" in text and "0 failed, unfinished" in text and "locked by another process" not in text


def test_a_group_whose_runs_did_not_share_one_budget_says_so(tmp_path):
    """Issue 44, item 15: a 20-step run beside 200-step runs of the same config was averaged in without a
    word (its config did not say it, its budget did)."""
    for seed, budget in ((1, 200), (2, 200), (3, 20)):
        fake_run(tmp_path, "minilm", "sst2", "prefix", seed, 0.8, stopped={"step": budget, "budget_steps": budget,
                                                                           "reason": "max_steps"})
    text = report(tmp_path).read_text()
    assert "**its runs differ: step budget 200 (seeds 1 2), 20 (seeds 3)**" in text
    (row,) = csv.DictReader((tmp_path / "results.csv").open())
    assert row["differs_within"] == "step budget 200 (seeds 1 2), 20 (seeds 3)"

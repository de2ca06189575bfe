import json

import pytest

from ltune.errors import LtuneError
from ltune.report import report, time_to_fraction


def fake_run(folder, model, data, method, seed, accuracy, mcc=None, curve=(0.5, 0.7, 0.8), settings=None, name=None):
    run = folder / (name or f"{model}_{data}_{method}_{seed}")
    (run / ".hydra").mkdir(parents=True)
    config = {"seed": seed, "run_name": f"{model}_{data}_{method}_s{seed}", "output_root": str(folder),
              "model": {"name": model}, "data": {"name": data}, "method": {"name": method, **(settings or {})}}
    (run / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    dev = {"accuracy": accuracy, "loss": 0.5, **({"matthews_corr": mcc} if mcc is not None else {})}
    log = [{"step": 10 * (i + 1), "loss": 1.0, "elapsed": 2.0 * (i + 1),
            "heldout": {"accuracy": acc, "loss": 1 - acc}} for i, acc in enumerate(curve)]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    (run / "metrics.json").write_text(json.dumps({
        "method": method, "model": model, "data": data, "seed": seed, "trainable_params": 100, "total_params": 1000,
        "dev": dev, "steps": 30, "peak_memory_mb": 10.0,
        "timing": {"seconds_per_step": 0.1, "train_seconds": 6.0, "eval_seconds_per_example": 0.01},
    }))
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
    assert "0.810 ± 0.014 (n=2); paper 0.812, Δ -0.002" in text  # L-prefix, BERT, CoLA
    assert "0.790 ± 0.000 (n=1); paper 0.807, Δ -0.017" in text  # prefix
    assert "0.550 ± 0.000 (n=1) |" in text  # no paper cell for minilm
    assert "## Matthews correlation" in text and "0.420 ± 0.028 (n=2)" in text
    assert "trainer.lr must be positive" in text and "killed_job" in text and "unfinished" in text
    rows = (tmp_path / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 and rows[0].startswith("model,data,method,variant,runs")
    for png in ("heldout_loss.png", "heldout_accuracy_vs_time.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_time_to_95_percent_of_best():
    log = [{"step": s, "elapsed": s / 10, "heldout": {"accuracy": a}} for s, a in [(10, 0.5), (20, 0.78), (30, 0.8)]]
    assert time_to_fraction(log) == (20, 2.0)  # 0.78 >= 0.95 * 0.8


def test_report_needs_finished_runs(tmp_path):
    with pytest.raises(LtuneError, match="no finished runs"):
        report(tmp_path)


def test_report_averages_only_seed_replicates_of_one_config(tmp_path):
    """Five prefix runs: two replicates at lr 0.01 with 16 tokens, and three single runs that
    differ in lr or virtual tokens. They are four groups, never one "n=5" cell (issue 9, defect 5)."""
    specs = [(1, 0.70, 0.01, 16), (2, 0.72, 0.01, 16), (1, 0.40, 0.1, 16), (1, 0.10, 0.01, 4), (1, 0.20, 0.1, 4)]
    for i, (seed, acc, lr, tokens) in enumerate(specs):
        fake_run(tmp_path, "minilm", "sst2", "prefix", seed, acc, settings={"lr": lr, "num_virtual_tokens": tokens},
                 name=f"run{i}")
    text = report(tmp_path).read_text()
    assert "(n=5)" not in text
    assert "| Prefix (P) [method.lr=0.01, method.num_virtual_tokens=16] | 0.710 ± 0.014 (n=2) |" in text
    assert "| Prefix (P) [method.lr=0.1, method.num_virtual_tokens=4] | 0.200 ± 0.000 (n=1) |" in text
    assert len((tmp_path / "results.csv").read_text().splitlines()) == 1 + 4

"""The ``ltune`` command end to end, as a user runs it (subprocesses, real config files)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SHORT = ["trainer.max_steps=6", "trainer.eval_every=3", "trainer.batch_size=8", "data.max_eval_samples=16",
         "data.max_train_samples=48", "model.max_length=32"]


def ltune(*args, tmp_path, check=True, env=None):
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "LTUNE_OUTPUT_DIR": str(tmp_path / "outputs"), **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "ltune.cli", *args], capture_output=True, text=True, env=environment, timeout=900
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def run_dirs(tmp_path):
    return sorted((tmp_path / "outputs" / "runs").glob("*"))


def test_default_train_writes_the_run_contract(tmp_path):
    result = ltune("train", *SHORT, tmp_path=tmp_path)
    assert "ltune: run folder" in result.stdout
    (run,) = run_dirs(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["method"], metrics["model"], metrics["data"], metrics["seed"]) == ("l_prefix", "minilm", "demo", 42)
    assert 0 < metrics["trainable_params"] < metrics["total_params"]
    assert metrics["trainable_params"] == metrics["paper_formula_params"]
    assert 0.0 <= metrics["dev"]["accuracy"] <= 1.0 and "macro_f1" in metrics["dev"]
    assert metrics["selection"]["split"] == "heldout" and metrics["selection"]["best_step"] in (3, 6)
    assert metrics["timing"]["train_seconds"] > 0 and metrics["timing"]["seconds_per_step"] > 0
    assert metrics["timing"]["eval_seconds"] > 0 and metrics["peak_memory_mb"] > 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert "heldout" in log[2] and "heldout" not in log[0]
    assert (run / "config.yaml").is_file() and (run / "trainable.safetensors").is_file()

    from safetensors.torch import load_file

    saved = load_file(run / "trainable.safetensors")
    assert sum(t.numel() for t in saved.values()) == metrics["trainable_params"]


def test_multirun_sweeps_methods_into_separate_folders(tmp_path):
    ltune("train", "-m", "method=l_prompt,prompt", *SHORT, tmp_path=tmp_path)
    metrics = sorted((tmp_path / "outputs" / "multirun").glob("*/*/metrics.json"))
    assert [json.loads(m.read_text())["method"] for m in metrics] == ["l_prompt", "prompt"]


@pytest.mark.parametrize(
    "args,expected",
    [
        (["model=gpt9"], "unknown model 'gpt9'; valid options: bert, bloom, deberta, falcon, llama2, minilm, roberta, smollm2"),
        (["-m", "method=l_prefix,lprompt"], "unknown method 'lprompt'; valid options: l_prefix, l_prompt, prefix, prompt"),
        (["data=glue"], "unknown data 'glue'; valid options: cola, demo, rte, sst2"),
        (["trainer.max_stepz=3"], "unknown config key 'trainer.max_stepz'; valid keys under trainer:"),
        (["model=bert"], "cannot load 'bert-base-uncased' from the Hugging Face hub (offline or unreachable?); offline alternatives: model=minilm or model=smollm2"),
        (["data=rte", "data.glue_dir=null"], "cannot load data set nyu-mll/glue (rte) from the Hugging Face hub (offline or unreachable?); use a local GLUE folder with data.glue_dir"),
        (["trainer.lr=0"], "trainer.lr must be positive"),
    ],
)
def test_bad_input_is_one_clear_line_and_leaves_nothing(tmp_path, args, expected):
    result = ltune("train", *args, tmp_path=tmp_path, check=False)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("ltune:")]
    assert len(lines) == 1 and expected in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert run_dirs(tmp_path) == []


def test_unknown_command(tmp_path):
    result = ltune("fly", tmp_path=tmp_path, check=False)
    assert result.returncode == 2 and "unknown command 'fly'; valid commands: train" in result.stderr

"""The ``ltune`` command end to end, as a user runs it (real config files). The command runs in this
process (``ltune_in_process``); a few tests start a real process where the process itself is what is
tested: its exit code and its one line."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import SHORT, ltune_in_process


def ltune(*args, tmp_path, check=True, env=None, stdin=None):
    """``ltune ARGS`` in this process with LTUNE_OUTPUT_DIR=tmp_path/outputs: (code, stdout, stderr)."""
    code, out, err = ltune_in_process(list(args), tmp_path / "outputs", stdin=stdin, env=env)
    if check:
        assert code == 0, (out + err)[-3000:]
    return code, out, err


def run_dirs(tmp_path):
    return sorted((tmp_path / "outputs" / "runs").glob("*"))


def test_default_train_writes_the_run_contract(trained_runs):
    run = trained_runs("l_prefix")
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["method"], metrics["model"], metrics["data"], metrics["seed"]) == ("l_prefix", "minilm", "demo", 42)
    assert 0 < metrics["trainable_params"] < metrics["total_params"]
    assert metrics["trainable_params"] == metrics["paper_formula_params"]
    assert 0.0 <= metrics["dev"]["accuracy"] <= 1.0 and "macro_f1" in metrics["dev"]
    assert metrics["selection"]["split"] == "heldout" and metrics["selection"]["best_step"] in (2, 4)
    assert metrics["timing"]["train_seconds"] > 0 and metrics["timing"]["seconds_per_step"] > 0
    assert metrics["timing"]["eval_seconds"] > 0 and metrics["peak_memory_mb"] > 0
    assert metrics["environment"]["machine"]["cores"] == os.cpu_count()  # whose seconds these are
    # the run conditions a report checks between the arms of a comparison
    from importlib import metadata

    import torch
    assert metrics["environment"]["threads"] == torch.get_num_threads()
    assert metrics["environment"]["transformers"] == metadata.version("transformers")
    assert metrics["environment"]["peft"] == metadata.version("peft")
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert "heldout" in log[1] and "heldout" not in log[0]
    assert (run / "config.yaml").is_file() and (run / "trainable.safetensors").is_file()

    from safetensors.torch import load_file

    saved = load_file(run / "trainable.safetensors")
    assert sum(t.numel() for t in saved.values()) == metrics["trainable_params"]


def test_eval_predict_and_explain_use_what_was_trained(trained_runs, tmp_path):
    run = trained_runs("l_prefix")
    dev = json.loads((run / "metrics.json").read_text())["dev"]
    # eval reloads the parameters and reproduces the dev figures.
    _, out, _ = ltune("eval", f"run={run}", tmp_path=tmp_path)
    (evaluation,) = (tmp_path / "outputs" / "evals" / run.name).glob("demo_validation_*.json")
    again = json.loads(evaluation.read_text())["metrics"]
    assert again["examples"] == 16 and again["accuracy"] == pytest.approx(dev["accuracy"])
    assert "ltune: demo validation (16 texts)" in out

    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"text": "The keeper saved a penalty."}\n{"text": "Whisk the eggs with sugar."}\n')
    _, out, _ = ltune("predict", f"run={run}", f"file={texts}", "format=jsonl", tmp_path=tmp_path)
    predictions = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [p["text"] for p in predictions] == ["The keeper saved a penalty.", "Whisk the eggs with sugar."]
    for p in predictions:
        assert set(p["scores"]) == {"sports", "cooking", "technology", "travel"}
        assert p["label"] == max(p["scores"], key=p["scores"].get)
    csv_file = tmp_path / "texts.csv"
    csv_file.write_text("text\nA new phone came out.\nWe flew to Lisbon.\n")
    _, from_csv, _ = ltune("predict", f"run={run}", f"file={csv_file}", "format=jsonl", tmp_path=tmp_path)
    assert len([line for line in from_csv.splitlines() if line.startswith("{")]) == 2
    _, from_stdin, _ = ltune("predict", f"run={run}", "format=jsonl", tmp_path=tmp_path,
                             stdin="Line one about football\nLine two about pasta\n")
    assert [json.loads(x)["text"] for x in from_stdin.splitlines() if x.startswith("{")] == [
        "Line one about football", "Line two about pasta"]
    _, table, _ = ltune("predict", f"run={run}", "text=A new phone came out.", tmp_path=tmp_path)
    assert "A new phone came out." in table and "technology" in table.splitlines()[0]
    # Open label texts: the L-methods score (text, label text) pairs, so unseen labels work.
    _, opened, _ = ltune("predict", f"run={run}", "text=The senate passed the bill.", "format=jsonl",
                         'labels=["this text is about politics", "this text is about sports", "this text is about music"]',
                         tmp_path=tmp_path)
    (record,) = [json.loads(line) for line in opened.splitlines() if line.startswith("{")]
    assert set(record["scores"]) == {"this text is about politics", "this text is about sports",
                                     "this text is about music"}
    _, explained, _ = ltune("explain", f"run={run}", "text=The keeper saved a penalty.", tmp_path=tmp_path)
    assert "L-prefix pooling weights over each label's tokens" in explained
    assert "sports: this=" in explained and "travel=" in explained
    (png,) = (tmp_path / "outputs" / "explain" / run.name).glob("*.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_early_stopping_waits_for_the_minimum_steps(tmp_path):
    """min_delta 1 means no evaluation after the first is a gain: patience 1 alone would stop at
    step 4 (the second evaluation); with min_steps 5 the run trains on to the next one, step 6."""
    ltune("train", *SHORT, "trainer.max_steps=8", "trainer.patience=1", "trainer.min_delta=1", "trainer.min_steps=5",
          tmp_path=tmp_path)
    (run,) = run_dirs(tmp_path)
    stopped = json.loads((run / "metrics.json").read_text())["stopped"]
    assert (stopped["step"], stopped["reason"], stopped["min_steps"]) == (6, "early_stopping", 5)


def test_multirun_sweeps_methods_into_separate_folders(tmp_path):
    ltune("train", "-m", "method=l_prompt,prompt", *SHORT, "trainer.max_steps=2", tmp_path=tmp_path)
    metrics = sorted((tmp_path / "outputs" / "multirun").glob("*/*/metrics.json"))
    assert [json.loads(m.read_text())["method"] for m in metrics] == ["l_prompt", "prompt"]


@pytest.mark.parametrize(
    "args,expected",
    [
        (["model=gpt9"], "unknown model 'gpt9'; valid options: bert, "),
        (["-m", "method=l_prefix,lprompt"], "unknown method 'lprompt'; valid options: l_prefix, l_prompt, peft_lora, peft_prompt, prefix, prompt"),
        (["data=glue"], "unknown data 'glue'; valid options: boolq, cb, cola, demo, mnli, mnli_mismatched, mrpc, qnli, qqp, rte, snli, sst2, wnli"),
        (["trainer.max_stepz=3"], "unknown config key 'trainer.max_stepz'; valid keys under trainer:"),
        (["model=bert"], "model=bert needs 'bert-base-uncased' from the Hugging Face hub, which is offline here (HF_HUB_OFFLINE) and not in the local cache; offline alternatives: model=minilm or model=smollm2"),
        (["data=rte", "data.glue_dir=null"], "cannot load data set nyu-mll/glue (rte) from the Hugging Face hub (offline or unreachable?); give local files with data.files={train: ..., validation: ...}, a GLUE folder with data.glue_dir"),
        (["trainer.lr=0"], "trainer.lr must be positive"),
        (["model.quantization=4bit"], "model.quantization=4bit needs a CUDA GPU (bitsandbytes) and none is visible"),
        (["model.quantization=3bit"], "unknown model.quantization '3bit'; valid: none, 8bit, 4bit"),
        (["trainer.compile=maybe"], "trainer.compile"),
        (["model.attn_implementation=fast"], "unknown model.attn_implementation 'fast'; valid: eager, sdpa, flash_attention_2"),
        (["model.attn_implementation=flash_attention_2"], "model.attn_implementation=flash_attention_2 is not available for model=minilm here"),
        (["trainer.precision=fp8"], "trainer.precision"),
        (["trainer.batch_size=0"], "trainer.batch_size must be a positive integer, got 0"),
        (["method=prefix", "model.max_length=500"], "model.max_length=500 plus 16 prefix/prompt positions exceeds the model's 512 positions; lower model.max_length to at most 496"),
        (["data.label_texts=[a,b]"], "data set demo has 4 label_names but 2 label_texts"),
        (["model.max_length=0"], "model.max_length must be a positive integer, got 0"),
        (["method=prefix", "method.num_virtual_tokens=0"], "method.num_virtual_tokens must be a positive integer, got 0"),
        (["data.label_names=[sports,sports,cooking,travel]"], "lists label name(s) ['sports'] more than once"),
    ],
)
def test_bad_input_is_one_clear_line_and_leaves_nothing(tmp_path, args, expected):
    code, _, err = ltune("train", *args, tmp_path=tmp_path, check=False)
    assert code not in (0, None)
    lines = [line for line in err.splitlines() if line.startswith("ltune:")]
    assert len(lines) == 1 and expected in lines[0], err[-2000:]
    assert "Traceback" not in err
    assert run_dirs(tmp_path) == []


def real_process(*args, tmp_path):
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "LTUNE_OUTPUT_DIR": str(tmp_path / "outputs")}
    return subprocess.run([sys.executable, "-m", "ltune.cli", *args], capture_output=True, text=True,
                          env=environment, timeout=900)


def test_a_real_process_exits_2_with_one_line_and_no_folder(tmp_path):
    """The process itself (not the in-process call): exit status 2, one ltune: line, no traceback."""
    for args, expected in ((["fly"], "unknown command 'fly'; valid commands: train, report, bench"),
                           (["train", "model=gpt9"], "unknown model 'gpt9'; valid options:")):
        result = real_process(*args, tmp_path=tmp_path)
        lines = [line for line in result.stderr.splitlines() if line.startswith("ltune:")]
        assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], result.stderr[-2000:]
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_eval_and_predict_need_a_trained_run(tmp_path):
    for command, extra in (("eval", []), ("predict", ["text=x"])):
        code, _, err = ltune(command, f"run={tmp_path}", *extra, tmp_path=tmp_path, check=False)
        assert code == 2
        assert f"{tmp_path} holds no trained parameters (trainable.safetensors)" in err


def test_failed_job_does_not_stop_the_sweep_and_is_reported(tmp_path):
    """The second job fails when its method is built (500 text + 16 prompt positions exceed
    MiniLM's 512): the first still finishes, the sweep then exits 1 naming the failed job."""
    short = [a for a in SHORT if not a.startswith("model.max_length")]
    code, _, err = ltune("train", "-m", "model.max_length=32,500", "method=prompt", *short, "trainer.max_steps=2",
                         tmp_path=tmp_path, check=False)
    assert code == 1 and "Traceback" not in err
    (sweep,) = (tmp_path / "outputs" / "multirun").glob("*")
    assert len(list(sweep.glob("*/metrics.json"))) == 1
    (failed,) = sweep.glob("*/failed.json")
    assert "exceeds the model's 512 positions" in json.loads(failed.read_text())["error"]
    assert f"1 job(s) of the sweep failed: {failed.parent.name}" in err
    _, out, _ = ltune("report", str(sweep), tmp_path=tmp_path)
    text = (sweep / "report.md").read_text()
    assert "1 finished runs; 1 failed" in text and "exceeds the model's 512 positions" in text
    assert "wrote" in out


def test_wandb_offline_run_lands_in_the_run_folder(tmp_path):
    pytest.importorskip("wandb")
    ltune("train", "logger=wandb", "method=prompt", *SHORT, "trainer.max_steps=2", tmp_path=tmp_path,
          env={"WANDB_MODE": "offline"})
    (run,) = run_dirs(tmp_path)
    (offline,) = (run / "wandb").glob("offline-run-*")
    (records,) = offline.glob("*.wandb")  # the offline run's record stream, synced later with `wandb sync`
    data = records.read_bytes()
    for key in (b"loss", b"lr", b"heldout/accuracy", b"heldout/loss", b"dev/accuracy", b"timing/seconds_per_step",
                b"timing/tokens_per_second", b"trainable_params", b"peak_memory_mb", b"minilm_demo_prompt_s42"):
        assert key in data, key


@pytest.mark.slow
def test_submitit_local_launcher_runs_the_same_path(tmp_path):
    """submitit starts each job in a process of its own: a real process, so the slow tier."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    result = real_process("train", "-m", "hydra/launcher=submitit_local", "method=prompt", *SHORT, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (metrics,) = (tmp_path / "outputs" / "multirun").glob("*/*/metrics.json")
    assert json.loads(metrics.read_text())["method"] == "prompt"


def test_user_data_config_over_local_jsonl_with_three_labels(tmp_path):
    """A user's own data set without code: a data config in their own --config-dir."""
    topics = {"billing": ["invoice", "refund", "charge"], "shipping": ["parcel", "courier", "delivery"],
              "account": ["password", "login", "profile"]}
    for split, count in (("train", 45), ("dev", 9)):
        rows = [{"body": f"question {i} about my {words[i % 3]}", "team": team}
                for i in range(count // 3) for team, words in topics.items()]
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "tickets.yaml").write_text(
        "defaults: [/base/data@_here_, _self_]\n"
        "name: tickets\n"
        f"files: {{train: {tmp_path}/train.jsonl, validation: {tmp_path}/dev.jsonl}}\n"
        "text_fields: [body]\nlabel_field: team\nlabel_names: [billing, shipping, account]\n"
        "label_texts: [a billing question, a shipping question, an account question]\n"
    )
    ltune("train", "--config-dir", str(tmp_path / "conf"), "data=tickets", "method=l_prefix", *SHORT,
          "trainer.max_steps=2", tmp_path=tmp_path)
    (run,) = run_dirs(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["data"] == "tickets" and metrics["sizes"]["dev"] == 9
    code, _, err = ltune("train", "--config-dir", str(tmp_path / "conf"), "data=tickets", "data.label_texts=[one,two]",
                         tmp_path=tmp_path, check=False)
    assert "3 label_names but 2 label_texts" in err and code == 2


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="torch.compile on the CPU needs a C++ compiler")
def test_train_with_a_compiled_backbone_runs_end_to_end(tmp_path):
    """Numerical equality with eager is checked in tests/test_train.py; here the trainer's path in a
    real process, as a user runs it: training shapes, held-out and dev evaluation under no_grad,
    selection, the run files."""
    result = real_process("train", *SHORT, "trainer.compile=true", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ltune: run folder" in result.stdout
    (run,) = run_dirs(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["dev"]["accuracy"] <= 1 and metrics["selection"]["best_step"] in (2, 4)
    assert "compile: true" in (run / "config.yaml").read_text()


def test_an_existing_run_folder_is_never_overwritten(trained_runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_runs("prompt"), run)
    before = (run / "metrics.json").read_bytes()
    code, _, err = ltune("train", "method=prompt", *SHORT, f"hydra.run.dir={run}", tmp_path=tmp_path, check=False)
    assert code == 2 and "already holds a finished run; it is never overwritten" in err
    assert (run / "metrics.json").read_bytes() == before and (run / "trainable.safetensors").exists()


def test_resume_auto_finds_a_run_saved_before_newer_config_keys_existed(tmp_path, monkeypatch):
    """A run saved by an ltune version without trainer.compile / fused_optimizer / attn_implementation
    is still the run resume=auto continues; a run with a different setting is not."""
    from omegaconf import OmegaConf

    from ltune.commands.train import newest_unfinished_run
    from ltune.config import compose as compose_config

    monkeypatch.setenv("LTUNE_OUTPUT_DIR", str(tmp_path))
    saved = OmegaConf.to_container(compose_config(["trainer.max_steps=7"]), resolve=True)
    del saved["trainer"]["compile"], saved["trainer"]["fused_optimizer"], saved["model"]["attn_implementation"]
    for name, seed in (("old_run", saved["seed"]), ("other_seed", saved["seed"] + 1)):
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(OmegaConf.to_yaml({**saved, "seed": seed}))
        (run / "checkpoint.pt").write_bytes(b"")
    assert newest_unfinished_run(["trainer.max_steps=7"], []) == tmp_path / "runs" / "old_run"
    assert newest_unfinished_run(["trainer.max_steps=8"], []) is None


def test_eval_reproduces_a_bf16_run_exactly(trained_runs, tmp_path):
    """ltune eval runs at the run's own precision: a bf16 run's dev figures come back bit for bit.
    (Two steps only: bf16 is emulated, 15-45x slower, on a CPU without native bf16.)"""
    run = trained_runs("l_prefix", "trainer.precision=bf16", "trainer.max_steps=2", "data.max_eval_samples=8")
    dev = json.loads((run / "metrics.json").read_text())["dev"]
    ltune("eval", f"run={run}", tmp_path=tmp_path)
    (evaluation,) = (tmp_path / "outputs" / "evals" / run.name).glob("*.json")
    again = json.loads(evaluation.read_text())
    assert again["precision"] == "bf16" and again["metrics"] == dev


@pytest.mark.parametrize("command, option", [("report", "compare="), ("eval", "run=(required)"), ("predict", "format=table"),
                                             ("explain", "steps=32"), ("bench", "batch_size=16")])
def test_every_subcommand_prints_its_options_on_help(command, option, capsys):
    """Issue 44, item 12: --help on report, eval, predict, explain and bench exited 2."""
    from ltune.cli import main

    main([command, "--help"])
    out = capsys.readouterr().out
    assert out.startswith(f"usage: ltune {command}") and option in out


def test_library_warnings_and_log_lines_show_once(caplog):
    """Issue 44, item 17: the same peft/transformers warning on every batch crowded ltune's own lines."""
    import logging
    import warnings

    from ltune.cli import show_library_warnings_once

    with warnings.catch_warnings(record=True) as caught:
        show_library_warnings_once()
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                logging.getLogger("peft").warning("Token type ids are not supported")
                warnings.warn("repeated from a loop", UserWarning)
            logging.getLogger("peft").warning("another line")
    messages = [r.getMessage() for r in caplog.records if r.name == "peft"]
    assert messages == ["Token type ids are not supported", "another line"]
    assert [str(w.message) for w in caught] == ["repeated from a loop"]

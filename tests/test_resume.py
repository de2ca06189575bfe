"""Interruption and reproducibility: a run killed with SIGKILL and resumed ends exactly as an
uninterrupted run with the same seed (CPU: bit-identical); Ctrl-C saves a checkpoint, exits 130."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ltune_in_process

ARGS = ["method=l_prefix", "trainer.max_steps=12", "trainer.eval_every=4", "trainer.batch_size=8",
        "data.max_eval_samples=16", "data.max_train_samples=40", "model.max_length=32", "trainer.checkpoint_every=2"]


def env(out):
    return {**os.environ, "HF_HUB_OFFLINE": "1", "LTUNE_OUTPUT_DIR": str(out)}


class Result:
    def __init__(self, code, stdout, stderr):
        self.returncode, self.stdout, self.stderr = code, stdout, stderr


def train(out, *extra, check=True):
    """``ltune train ARGS EXTRA`` in this process (LTUNE_OUTPUT_DIR=out)."""
    result = Result(*ltune_in_process(["train", *ARGS, *extra], out))
    if check:
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result


def start_and_stop_midway(out, sig):
    """Start a run and send ``sig`` once 7 of its 12 steps are logged (a checkpoint exists at step 6)."""
    process = subprocess.Popen([sys.executable, "-m", "ltune.cli", "train", *ARGS], env=env(out),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline:
        logs = list((out / "runs").glob("*/log.jsonl"))
        if logs and len(logs[0].read_text().splitlines()) >= 7:
            process.send_signal(sig)
            break
        time.sleep(0.02)
    code = process.wait(timeout=600)
    (run,) = (out / "runs").iterdir()
    return run, code


def outcome(run):
    metrics = json.loads((run / "metrics.json").read_text())
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return metrics, [(r["step"], r["loss"], r.get("heldout")) for r in log]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    train(out)
    (run,) = (out / "runs").iterdir()
    return outcome(run)


def test_same_seed_same_config_gives_identical_metrics(tmp_path, uninterrupted):
    train(tmp_path)
    (run,) = (tmp_path / "runs").iterdir()
    metrics, log = outcome(run)
    assert metrics["dev"] == uninterrupted[0]["dev"] and log == uninterrupted[1]


@pytest.mark.slow
def test_sigkill_then_resume_auto_ends_exactly_like_an_uninterrupted_run(tmp_path, uninterrupted):
    run, code = start_and_stop_midway(tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert not (run / "metrics.json").exists() and (run / "checkpoint.pt").exists()
    result = train(tmp_path, "resume=auto")
    assert f"resuming {run}" in result.stdout
    metrics, log = outcome(run)
    assert metrics["dev"] == uninterrupted[0]["dev"]
    assert metrics["selection"] == uninterrupted[0]["selection"]
    assert log == uninterrupted[1]  # every step's loss and every held-out evaluation, bit for bit
    assert not (run / "checkpoint.pt").exists()  # a finished run keeps only its selected parameters
    # Bug: total_seconds counted only the resumed process, so it could be shorter than the run's
    # training time (a negative share outside steps). It now adds the wall-clock before the resume.
    timing = metrics["timing"]
    step6 = next(json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()
                 if json.loads(line)["step"] == 6)
    assert timing["seconds_before_resume"] >= step6["elapsed"]  # the checkpoint at step 6 came after its log line
    assert timing["total_seconds"] >= timing["train_seconds"] >= timing["seconds_before_resume"]


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_and_exits(tmp_path, uninterrupted, sig, code):
    """Ctrl-C, and SIGTERM as SLURM sends it (issue 44, item 11: it exited 143 with no message and no
    checkpoint), finish the step, checkpoint and exit 128 + the signal; the run resumes to the same figures."""
    run, exit_code = start_and_stop_midway(tmp_path, sig)
    assert exit_code == code
    assert (run / "checkpoint.pt").exists() and not (run / "metrics.json").exists()
    train(tmp_path, f"resume={run}")
    assert outcome(run)[0]["dev"] == uninterrupted[0]["dev"]


def test_a_signal_ends_the_run_with_128_plus_its_number():
    import signal as signals

    from ltune.train import exit_code, signal_name

    assert exit_code([signals.SIGTERM]) == 143 and signal_name([signals.SIGTERM]) == "SIGTERM"
    assert exit_code([signals.SIGINT, signals.SIGTERM]) == 130 and signal_name([signals.SIGINT]) == "Ctrl-C"


@pytest.mark.parametrize("what", ["not_a_run", "finished"])
def test_resume_refuses_what_it_cannot_continue(tmp_path, uninterrupted, what):
    folder = tmp_path / "folder"
    folder.mkdir()
    if what == "finished":
        (folder / "metrics.json").write_text("{}")
    result = train(tmp_path, f"resume={folder}", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    expected = "is not an unfinished ltune run" if what == "not_a_run" else "that run already finished"
    assert expected in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ([] if what == "not_a_run" else ["metrics.json"])


def test_a_nan_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path):
    # A learning rate of 1e30 blows the prefix up after the first update: the next loss is not finite.
    result = train(tmp_path, "trainer.lr=1e30", "trainer.checkpoint_every=1", "trainer.grad_clip=0", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("ltune:")]
    assert "the training loss became" in line and "lower trainer.lr" in line and "is kept" in line
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "checkpoint.pt").exists() and not (run / "metrics.json").exists()

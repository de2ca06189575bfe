"""The tuning sweeper (hydra/sweeper=ltune_tune): learning rate chosen on held-out per cell, seed
replicates at the chosen rate, and a sweep that survives being killed."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ltune_in_process

SWEEP = ["-m", "hydra/sweeper=ltune_tune", "method=prefix,l_prefix", "hydra.sweeper.search_seeds=[1]",
         "hydra.sweeper.seeds=[1,2]", "hydra.sweeper.reuse_search_runs=true", "hydra.sweeper.max_grid_extensions=0", "method.lr_search=[0.001,0.01]",
         "trainer.max_steps=6", "trainer.eval_every=3", "trainer.checkpoint_every=1", "data.max_eval_samples=16",
         "model.max_length=32"]


class Result:
    def __init__(self, code, stdout, stderr):
        self.returncode, self.stdout, self.stderr = code, stdout, stderr


def sweep(tmp_path, folder, grid=SWEEP, expect=0):
    """The sweep run in this process (LTUNE_OUTPUT_DIR=tmp_path)."""
    result = Result(*ltune_in_process(["train", *grid, f"hydra.sweep.dir={folder}"], tmp_path))
    assert result.returncode == expect, (result.stdout + result.stderr)[-3000:]
    return result


def sweep_process(tmp_path, folder, grid=SWEEP):
    """The same sweep as a real process, to be killed."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LTUNE_OUTPUT_DIR": str(tmp_path)}
    args = [sys.executable, "-m", "ltune.cli", "train", *grid, f"hydra.sweep.dir={folder}"]
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def outcomes(folder):
    found = {}
    for metrics in sorted(folder.glob("*/*/metrics.json")):
        m = json.loads(metrics.read_text())
        log = [json.loads(line) for line in (metrics.parent / "log.jsonl").read_text().splitlines()]
        found[str(metrics.parent.relative_to(folder))] = (m["dev"], [(r["step"], r["loss"]) for r in log])
    return found


@pytest.fixture(scope="module")
def complete(tmp_path_factory):
    root = tmp_path_factory.mktemp("complete")
    sweep(root, root / "sweep")
    return root / "sweep"


def test_lr_chosen_on_held_out_then_replicated(complete):
    tuning = json.loads((complete / "tuning.json").read_text())
    for cell in tuning["cells"]:
        heldout = cell["heldout_score"]
        best = max(heldout.values())
        assert heldout[f"{cell['chosen_lr']:g}"] == best  # the best held-out accuracy (ties: smaller lr)
        assert cell["chosen_lr"] == min(float(lr) for lr, acc in heldout.items() if acc == best)
        assert cell["reused_runs"] == [f"search/{cell['name']}_lr{cell['chosen_lr']:g}_s1"]
    runs = outcomes(complete)
    assert sorted(runs) == sorted(
        [f"search/{m}_lr{lr}_s1" for m in ("prefix", "l_prefix") for lr in ("0.001", "0.01")]
        + [f"final/{m}_s2" for m in ("prefix", "l_prefix")])
    for m in ("prefix", "l_prefix"):  # the replicate ran at the chosen rate
        chosen = next(c["chosen_lr"] for c in tuning["cells"] if c["name"] == m)
        config = (complete / "final" / f"{m}_s2" / "config.yaml").read_text()
        assert f"lr: {chosen}" in config


@pytest.mark.slow
def test_a_killed_sweep_resumes_to_the_figures_of_one_never_killed(tmp_path, complete):
    """Kill a second sweep (a real process) during its third job, run it again into the same folder."""
    runs = outcomes(complete)
    killed = tmp_path / "killed"
    process = sweep_process(tmp_path, killed)
    deadline = time.time() + 600
    while time.time() < deadline and not (len(list(killed.glob("search/*/metrics.json"))) >= 2
                                          and list(killed.glob("search/*/checkpoint.pt"))):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = {p.parent.name for p in killed.glob("search/*/metrics.json")}
    assert finished_before and list(killed.glob("search/*/checkpoint.pt"))
    # Run again from another output root (LTUNE_OUTPUT_DIR changed): that setting never changes
    # a run's numbers, so the unfinished job resumes instead of being dropped from the search.
    again = sweep(tmp_path / "elsewhere", killed)
    for name in finished_before:
        assert f"{name} already finished; skipped" in again.stdout
    assert "resuming" in again.stdout
    assert outcomes(killed) == runs  # the same dev figures and per-step losses as the sweep never killed


def test_report_of_a_tuned_sweep_averages_the_replicates(complete, tmp_path):
    folder = complete
    code, out, err = ltune_in_process(["report", str(folder)], tmp_path)
    assert code == 0, (out + err)[-2000:]
    text = (folder / "report.md").read_text()
    assert "## Learning-rate search (held-out)" in text and "(n=2)" in text
    assert "4 finished runs (and 2 learning-rate search runs, not averaged)" in text
    assert "| minilm / demo | l_prefix | prefix |" in text  # the paired twin comparison


def test_a_sweep_folder_holding_another_configs_unfinished_run_fails_that_job_loudly(tmp_path):
    from omegaconf import OmegaConf

    from ltune import config as configs

    one = [a.replace("prefix,l_prefix", "prefix").replace("0.001,0.01", "0.001").replace("[1,2]", "[1]")
           for a in SWEEP]
    folder = tmp_path / "sweep" / "search" / "prefix_lr0.001_s1"
    folder.mkdir(parents=True)
    other = configs.compose(["method=prefix", "trainer.lr=0.001", "seed=1", "trainer.max_steps=7"])
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(other, resolve=True))
    (folder / "checkpoint.pt").write_bytes(b"not this sweep's")
    result = sweep(tmp_path, tmp_path / "sweep", grid=one, expect=1)
    assert "job(s) of the sweep failed: search/prefix_lr0.001_s1" in result.stderr
    failure = json.loads((folder / "failed.json").read_text())
    assert "holds an unfinished run of another config" in failure["error"]
    assert (folder / "checkpoint.pt").read_bytes() == b"not this sweep's"  # never overwritten


def test_a_sweep_run_again_with_changed_settings_fails_its_finished_jobs_instead_of_keeping_them(tmp_path):
    """Bug: a finished job was skipped whatever its config, so a sweep run again into the same
    folder with e.g. more steps reported the old runs' numbers as the new settings'. Now the job
    fails naming the setting; settings that do not change what a run measures still skip."""
    one = [a.replace("prefix,l_prefix", "prefix").replace("0.001,0.01", "0.001").replace("[1,2]", "[1]")
           for a in SWEEP]
    folder = tmp_path / "sweep"
    sweep(tmp_path, folder, grid=one)
    metrics = folder / "search" / "prefix_lr0.001_s1" / "metrics.json"
    before = metrics.read_bytes()

    same = sweep(tmp_path / "elsewhere", folder, grid=[*one, "trainer.num_threads=1"])
    assert "already finished; skipped" in same.stdout

    changed = sweep(tmp_path, folder, grid=[a.replace("max_steps=6", "max_steps=7") for a in one], expect=1)
    assert "holds a finished run of another config (it differs in trainer.max_steps)" in changed.stderr
    assert "job(s) of the sweep failed: search/prefix_lr0.001_s1" in changed.stderr
    assert metrics.read_bytes() == before  # never overwritten


def test_sweeps_of_one_task_at_a_time_into_one_folder_keep_every_cells_tuning(tmp_path):
    """A second sweep into the same folder (another data set) adds its cells to tuning.json; a cell
    swept again is replaced. The report counts reused replicates from tuning.json."""
    from ltune.tuning import write_tuning

    def cell(name, lr):
        return {"cell": [f"data={name}"], "name": name, "search_space": [lr], "heldout_accuracy": {f"{lr:g}": 0.5},
                "chosen_lr": lr, "search_seeds": [1], "seeds": [1, 2, 3], "searched": True,
                "reused_runs": [f"search/{name}_lr{lr:g}_s1"]}

    write_tuning(tmp_path, [cell("minilm_sst2_prefix", 0.01)])
    write_tuning(tmp_path, [cell("minilm_cola_prefix", 0.001)])
    write_tuning(tmp_path, [cell("minilm_cola_prefix", 0.003)])
    cells = json.loads((tmp_path / "tuning.json").read_text())["cells"]
    assert {c["name"]: c["chosen_lr"] for c in cells} == {"minilm_cola_prefix": 0.003, "minilm_sst2_prefix": 0.01}
    markdown = (tmp_path / "tuning.md").read_text()
    assert "minilm_sst2_prefix" in markdown and "minilm_cola_prefix" in markdown


@pytest.mark.slow  # joblib starts worker processes (each imports torch and loads the model)
def test_jobs_run_side_by_side_under_the_joblib_launcher_give_the_basic_launchers_figures(tmp_path, complete):
    """make reproduce-offline runs two 1-thread jobs at a time (hydra/launcher=joblib): the same
    jobs, the same chosen rates, the same per-step losses and dev figures as one job at a time."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    parallel = tmp_path / "parallel"
    sweep(tmp_path, parallel, grid=[*SWEEP, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                                    "trainer.num_threads=1"])
    chosen = {c["name"]: c["chosen_lr"] for c in json.loads((complete / "tuning.json").read_text())["cells"]}
    assert {c["name"]: c["chosen_lr"] for c in json.loads((parallel / "tuning.json").read_text())["cells"]} == chosen
    serial, side_by_side = outcomes(complete), outcomes(parallel)
    assert sorted(side_by_side) == sorted(serial)
    for name, (dev, losses) in serial.items():
        other_dev, other_losses = side_by_side[name]
        assert other_dev["accuracy"] == dev["accuracy"], name
        assert [step for step, _ in other_losses] == [step for step, _ in losses]
        assert [loss for _, loss in other_losses] == pytest.approx([loss for _, loss in losses], abs=1e-4), name


def test_a_tuned_sweep_checks_what_every_job_needs_before_the_first_one(tmp_path):
    """Issue 44, item 9: README's tuned sweep run offline left 8 failed job folders behind, where a single
    run stops before it makes any. The sweeper checks every job's model and data first: one line, exit 2,
    no sweep folder."""
    # the grid in the sweeper's params, as experiment configs give it: only the sweeper sees model=bert
    grid = ["-m", "hydra/sweeper=ltune_tune", "hydra.sweeper.params={model: bert, method: 'l_prefix,prefix'}",
            "trainer.max_steps=2"]
    result = sweep(tmp_path, tmp_path / "sweep", grid, expect=2)
    lines = [line for line in result.stderr.splitlines() if line.startswith("ltune:")]
    assert len(lines) == 1 and "needs 'bert-base-uncased' from the Hugging Face hub, which is offline here" in lines[0]
    assert not (tmp_path / "sweep").exists()

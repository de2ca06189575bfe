"""Packed training (ltune/packed.py): several runs through one frozen model, each the run it would be alone.

On the real all-MiniLM-L6-v2 with the demo data and trainer.backbone_dropout=false: for each of the four
packable methods, runs of other seeds and learning rates trained as one pack log the losses of the same
runs trained alone (within a stated tolerance: only the padding and the batch shape change the order of
floating-point sums), select the same best step and score dev within one example."""

import json

import pytest

from tests.conftest import compose

SHORT = ["trainer.max_steps=20", "trainer.eval_every=5", "trainer.checkpoint_every=5", "data.max_eval_samples=16",
         "model.max_length=32", "trainer.batch_size=8", "trainer.backbone_dropout=false"]
#: Largest |packed − alone| of a logged training loss (fp32 on a CPU).
LOSS_TOLERANCE = 1e-4


def log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def configs(method: str, seeds_and_rates):
    return [compose(f"method={method}", *SHORT, f"seed={seed}", f"trainer.lr={lr}") for seed, lr in seeds_and_rates]


@pytest.mark.parametrize("method", ["prefix", "prompt", "l_prefix", "l_prompt"])
def test_a_packed_run_is_the_run_alone(method, tmp_path):
    from ltune.packed import train_pack
    from ltune.train import train

    runs = [(1, 0.01), (2, 0.003), (3, 0.03)]
    alone = []
    for cfg, (seed, _) in zip(configs(method, runs), runs):
        alone.append(train(cfg, tmp_path / "alone" / f"s{seed}"))
    folders = [tmp_path / "packed" / f"s{seed}" for seed, _ in runs]
    packed = train_pack(configs(method, runs), folders, [False] * len(runs))
    for a, p, folder, (seed, _) in zip(alone, packed, folders, runs):
        losses_alone = [r["loss"] for r in log(tmp_path / "alone" / f"s{seed}")]
        losses_packed = [r["loss"] for r in log(folder)]
        assert len(losses_packed) == len(losses_alone) == 20
        assert max(abs(x - y) for x, y in zip(losses_alone, losses_packed)) < LOSS_TOLERANCE, method
        assert p["selection"]["best_step"] == a["selection"]["best_step"]
        assert abs(p["dev"]["accuracy"] - a["dev"]["accuracy"]) <= 1 / p["dev"]["examples"] + 1e-12
        assert p["packed_with"] == [str(f) for f in folders if f != folder]
        assert (folder / "config.yaml").read_text() == (tmp_path / "alone" / f"s{seed}" / "config.yaml").read_text()


def test_a_run_that_stops_early_leaves_the_pack_and_the_others_go_on(tmp_path):
    from ltune.packed import train_pack

    # min_delta 1: no evaluation after the first counts as a gain, so the first run stops at step 10
    cfgs = [compose("method=prefix", *SHORT, "seed=1", "trainer.patience=1", "trainer.min_delta=1.0"),
            compose("method=prefix", *SHORT, "seed=2")]
    folders = [tmp_path / "a", tmp_path / "b"]
    first, second = train_pack(cfgs, folders, [False, False])
    assert first["stopped"]["reason"] == "early_stopping" and first["steps"] == 10
    assert second["steps"] == 20 and len(log(folders[1])) == 20


@pytest.mark.parametrize("overrides, message", [
    (["trainer.backbone_dropout=true"], "packed runs need trainer.backbone_dropout=false"),
    (["method.num_virtual_tokens=4"], "differ in method.num_virtual_tokens"),
    (["model.max_length=64"], "differ in model.max_length"),
    (["model=smollm2"], "differ in model."),
])
def test_runs_that_cannot_share_a_forward_are_refused_before_anything_loads(tmp_path, overrides, message):
    from ltune.errors import LtuneError
    from ltune.packed import check_packable

    cfgs = [compose("method=prefix", *SHORT, "seed=1"), compose("method=prefix", *SHORT, "seed=2", *overrides)]
    if "backbone_dropout=true" in overrides[0]:
        cfgs = [compose("method=prefix", *SHORT, *overrides, "seed=1"), cfgs[1]]
    with pytest.raises(LtuneError, match=message):
        check_packable(cfgs)
    with pytest.raises(LtuneError, match="method=peft_lora cannot be packed"):
        check_packable([compose("method=peft_lora", *SHORT), compose("method=peft_lora", *SHORT, "seed=2")])


def test_a_tuning_sweep_with_packs_gives_the_figures_of_the_same_sweep_unpacked(tmp_path):
    """hydra.sweeper.pack=2: the search runs of a cell and its replicates train two by two; every run folder
    holds what the unpacked sweep's holds (within the tolerance above), runs.csv marks nothing but
    packed_with, and the choices are the same."""
    from tests.conftest import ltune_in_process

    grid = ["train", "-m", "hydra/sweeper=ltune_tune", "method=prefix", "hydra.sweeper.search_seeds=[1]",
            "hydra.sweeper.seeds=[2,3]", "hydra.sweeper.max_grid_extensions=0", "method.lr_search=[0.003,0.03]", *SHORT]
    for name, extra in (("alone", []), ("packed", ["hydra.sweeper.pack=2"])):
        code, out, err = ltune_in_process([*grid, *extra, f"hydra.sweep.dir={tmp_path / name}"], tmp_path / "outputs")
        assert code == 0, (out + err)[-3000:]
    assert len(list((tmp_path / "packed" / "packs").glob("*.json"))) == 2  # the search pack and the replicates'
    runs = sorted(str(p.relative_to(tmp_path / "alone")) for p in (tmp_path / "alone").glob("*/*/metrics.json"))
    assert runs == sorted(str(p.relative_to(tmp_path / "packed")) for p in (tmp_path / "packed").glob("*/*/metrics.json"))
    for run in runs:
        alone = json.loads((tmp_path / "alone" / run).read_text())
        packed = json.loads((tmp_path / "packed" / run).read_text())
        assert "packed_with" in packed and "packed_with" not in alone
        assert packed["selection"]["best_step"] == alone["selection"]["best_step"]
        assert abs(packed["dev"]["accuracy"] - alone["dev"]["accuracy"]) <= 1 / 16 + 1e-12
        losses = [(json.loads(a)["loss"], json.loads(b)["loss"]) for a, b in zip(
            (tmp_path / "alone" / run).with_name("log.jsonl").read_text().splitlines(),
            (tmp_path / "packed" / run).with_name("log.jsonl").read_text().splitlines())]
        assert max(abs(a - b) for a, b in losses) < LOSS_TOLERANCE
    chosen = [json.loads((tmp_path / name / "tuning.json").read_text())["cells"][0]["chosen_lr"] for name in ("alone", "packed")]
    assert chosen[0] == chosen[1]


@pytest.mark.slow  # a real process, killed
def test_a_killed_packed_sweep_resumes_to_the_figures_of_one_never_killed(tmp_path):
    """SIGKILL while a pack of two replicates trains (both have a checkpoint); the same command again resumes
    each run from its own checkpoint and ends with the figures of the packed sweep never killed."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ltune_in_process

    grid = ["train", "-m", "hydra/sweeper=ltune_tune", "method=prefix", "hydra.sweeper.search_seeds=[1]",
            "hydra.sweeper.seeds=[2,3]", "hydra.sweeper.max_grid_extensions=0", "method.lr_search=[0.03]",
            "hydra.sweeper.pack=2", *SHORT, "trainer.checkpoint_every=1"]
    code, out, err = ltune_in_process([*grid, f"hydra.sweep.dir={tmp_path / 'whole'}"], tmp_path / "outputs")
    assert code == 0, (out + err)[-3000:]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LTUNE_OUTPUT_DIR": str(tmp_path / "outputs")}
    process = subprocess.Popen([sys.executable, "-m", "ltune.cli", *grid, f"hydra.sweep.dir={tmp_path / 'killed'}"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and len(list((tmp_path / "killed").glob("final/*/checkpoint.pt"))) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(list((tmp_path / "killed").glob("final/*/checkpoint.pt"))) == 2
    code, out, err = ltune_in_process([*grid, f"hydra.sweep.dir={tmp_path / 'killed'}"], tmp_path / "outputs")
    assert code == 0 and out.count("resuming") == 2, (out + err)[-3000:]
    for seed in (2, 3):
        whole = json.loads((tmp_path / "whole" / "final" / f"prefix_s{seed}" / "metrics.json").read_text())
        again = json.loads((tmp_path / "killed" / "final" / f"prefix_s{seed}" / "metrics.json").read_text())
        assert again["selection"]["best_step"] == whole["selection"]["best_step"]
        assert abs(again["dev"]["accuracy"] - whole["dev"]["accuracy"]) <= 1 / 16 + 1e-12
        losses = zip(log(tmp_path / "whole" / "final" / f"prefix_s{seed}"), log(tmp_path / "killed" / "final" / f"prefix_s{seed}"))
        assert max(abs(a["loss"] - b["loss"]) for a, b in losses) < LOSS_TOLERANCE

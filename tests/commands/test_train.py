"""``ltune train`` as a command (issue 21): warnings a run owes its user (dev labels it never
trained on, tied labels), what a run folder holds, resume=auto beside a finished twin, Ctrl-C
inside a sweep's evaluation."""

import contextlib
import io
import json
import os
import signal

import pytest

from tests.conftest import compose, run_cli

SHORT = ["trainer.max_steps=2", "trainer.eval_every=2", "data.max_eval_samples=8", "model.max_length=32"]
TOPICS = ["sports", "cooking", "technology", "travel"]


def jsonl(path, labels, n):
    path.write_text("".join(json.dumps({"text": f"text number {i} about {labels[i % len(labels)]}",
                                        "label": labels[i % len(labels)]}) + "\n" for i in range(n)))
    return path


@pytest.fixture(scope="module")
def two_class_run(tmp_path_factory):
    """One 2-step run whose training split has 2 of the demo's 4 labels and whose dev split has all
    4; L-prefix is made to report labels 2 and 3 as identical. (stdout, run folder)"""
    from hydra.core.global_hydra import GlobalHydra

    from ltune import cli
    from ltune.methods.l_prefix.model import LPrefix

    tmp = tmp_path_factory.mktemp("two_class")
    train, dev = jsonl(tmp / "train.jsonl", TOPICS[:2], 40), jsonl(tmp / "dev.jsonl", TOPICS, 12)
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LTUNE_OUTPUT_DIR", str(tmp / "outputs"))
        patch.setattr(LPrefix, "identical_label_pairs", lambda self: [(2, 3)])
        GlobalHydra.instance().clear()
        with contextlib.redirect_stdout(stdout), contextlib.suppress(SystemExit):
            cli.main(["train", "trainer.max_steps=2", "trainer.eval_every=2", "model.max_length=32",
                      f"data.files.train={train}", f"data.files.validation={dev}"])
        GlobalHydra.instance().clear()
    (run,) = (tmp / "outputs" / "runs").iterdir()
    return stdout.getvalue(), run


def test_dev_labels_never_seen_in_training_are_named(two_class_run):
    out, run = two_class_run
    warnings = [line for line in out.splitlines() if line.startswith("ltune: warning: dev labels never seen")]
    assert len(warnings) == 1 and "'technology' (3 of 12 dev texts), 'travel' (3 of 12 dev texts)" in warnings[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dev_labels_unseen_in_training"] == {"technology": 3, "travel": 3}


def test_tied_labels_are_warned_about_and_recorded(two_class_run):
    out, run = two_class_run
    warnings = [line for line in out.splitlines() if line.startswith("ltune: warning: labels with identical scores")]
    assert len(warnings) == 1 and "'technology', 'travel' (only 'technology' can be predicted)" in warnings[0]
    assert json.loads((run / "metrics.json").read_text())["tied_labels"] == [["technology", "travel"]]


def test_a_run_folder_holds_no_empty_log(two_class_run):
    """Hydra's job log (ltune.log) stayed empty in every run folder: it is no longer made."""
    _, run = two_class_run
    assert (run / "metrics.json").is_file() and not (run / "ltune.log").exists()
    assert not [p for p in run.rglob("*") if p.is_file() and p.stat().st_size == 0]


def test_resume_auto_names_a_finished_twin_and_trains_nothing(tmp_path, monkeypatch, capsys):
    """resume=auto with only a finished run of the same config: it says where, and trains no duplicate."""
    from omegaconf import OmegaConf

    monkeypatch.setenv("LTUNE_OUTPUT_DIR", str(tmp_path))
    twin = tmp_path / "runs" / "finished_twin"
    twin.mkdir(parents=True)
    (twin / "config.yaml").write_text(OmegaConf.to_yaml(compose(*SHORT), resolve=True))
    (twin / "metrics.json").write_text(json.dumps({"status": "finished"}))
    code, out, err = run_cli(["train", *SHORT, "resume=auto"], tmp_path, monkeypatch, capsys)
    assert code in (0, None), (out + err)[-2000:]
    assert f"a finished run of this config exists: {twin}" in err and "nothing trained" in err
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["finished_twin"]


def test_ctrl_c_during_a_sweeps_evaluation_exits_130_cleanly(tmp_path, monkeypatch, capsys):
    """SIGINT while a tuning sweep's job scores dev (outside the training steps): no
    KeyboardInterrupt traceback; the job finishes writing its results, the sweep stops with 130."""
    import ltune.train

    real = ltune.train.predict_scores

    def interrupted_dev(method, loader, device, desc="eval", *args, **kwargs):
        if desc == "dev":
            os.kill(os.getpid(), signal.SIGINT)
        return real(method, loader, device, desc, *args, **kwargs)

    monkeypatch.setattr(ltune.train, "predict_scores", interrupted_dev)
    sweep = tmp_path / "sweep"
    args = ["train", "-m", "hydra/sweeper=ltune_tune", "method=prefix", "method.lr_search=[0.01,0.03]",
            "method.num_virtual_tokens=2", f"hydra.sweep.dir={sweep}", *SHORT]
    try:
        code, out, err = run_cli(args, tmp_path, monkeypatch, capsys)
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped the sweep")
    assert code == 130 and "Traceback" not in out + err and "KeyboardInterrupt" not in out + err, (out + err)[-2000:]
    finished = list(sweep.rglob("metrics.json"))
    assert len(finished) == 1  # the interrupted job finished; the sweep started no other job
    assert "ltune: interrupted" in out + err

"""Shared test set-up: offline environment, the real GLUE folder, the ``ltune`` command run in this
process, and tiny trained runs shared by every test that only reads them.

Tiers: ``make test`` runs everything not marked ``slow``; ``make test-slow`` runs the ``slow`` tests
(real processes killed or interrupted, two gloo processes, torch.compile, real SmolLM2 weights,
process-based launchers). CI runs both."""

import contextlib
import io
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "disabled")

REPO = Path(__file__).resolve().parents[1]

#: The smallest budget that still runs every stage of a run: two held-out evaluations, selection,
#: dev scoring, the run files.
SHORT = ["trainer.max_steps=4", "trainer.eval_every=2", "trainer.batch_size=8", "data.max_eval_samples=16",
         "data.max_train_samples=32", "model.max_length=32"]


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: real processes, signals, compile or real 135M weights (make test-slow)")


def glue_dir() -> Path | None:
    """LTUNE_GLUE_DIR, else the project's shared/data/glue beside the checkout or any folder above it
    (CI clones main next to a copy of shared/)."""
    candidates = [os.environ.get("LTUNE_GLUE_DIR")] + [parent / "shared" / "data" / "glue" for parent in REPO.parents]
    for candidate in candidates:
        if candidate and (Path(candidate) / "RTE" / "train.tsv").is_file():
            return Path(candidate)
    return None


@pytest.fixture
def glue():
    path = glue_dir()
    if path is None:
        pytest.skip("no GLUE TSV folder (set LTUNE_GLUE_DIR)")
    return path


def compose(*overrides: str):
    """The config ``ltune train OVERRIDES`` would run with (Hydra's compose API, no run folder)."""
    from ltune.config import compose

    return compose(list(overrides))


def ltune_in_process(args, outputs: Path, stdin: str | None = None, env: dict | None = None):
    """(exit code, stdout, stderr) of ``ltune ARGS`` run in this process, with LTUNE_OUTPUT_DIR=outputs:
    no interpreter start, no second import of torch and transformers, and the frozen backbone a
    previous run loaded is reused (as a sweep's jobs reuse it). The environment, argv, stdin, the
    working folder and torch's thread count are restored afterwards. Exit codes of a real process,
    signals and Ctrl-C are proven by the subprocess tests marked slow."""
    import torch
    from hydra.core.global_hydra import GlobalHydra

    from ltune import cli

    out, err = io.StringIO(), io.StringIO()
    threads, cwd = torch.get_num_threads(), os.getcwd()
    code = 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LTUNE_OUTPUT_DIR", str(outputs))
        patch.setenv("HF_HUB_OFFLINE", "1")
        for key, value in (env or {}).items():
            patch.setenv(key, value)
        patch.setattr(sys, "argv", ["ltune", *args])
        patch.setattr(sys, "stdin", io.StringIO(stdin if stdin is not None else ""))
        GlobalHydra.instance().clear()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                cli.main(list(args))
        except SystemExit as exit_:
            code = 0 if exit_.code is None else exit_.code
        finally:
            GlobalHydra.instance().clear()
            torch.set_num_threads(threads)
            os.chdir(cwd)
    return code, out.getvalue(), err.getvalue()


def run_cli(args, outputs: Path, monkeypatch=None, capsys=None, stdin: str | None = None, env: dict | None = None):
    """``ltune_in_process`` under the name the bad-input tests use (monkeypatch and capsys unused)."""
    return ltune_in_process(args, outputs, stdin=stdin, env=env)


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory):
    """``trained_runs(method, *overrides)``: a finished run of the demo job with SHORT budgets, trained
    once per test session (in this process) and shared by the tests that only read it."""
    made: dict[tuple, Path] = {}

    def get(method: str = "l_prefix", *overrides: str) -> Path:
        key = (method, *overrides)
        if key not in made:
            outputs = tmp_path_factory.mktemp(f"trained_{method}")
            code, out, err = ltune_in_process(["train", f"method={method}", *SHORT, *overrides], outputs)
            assert code == 0, (out + err)[-3000:]
            (made[key],) = (outputs / "runs").iterdir()
        return made[key]

    return get

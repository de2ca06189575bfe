"""``ltune train ARGS``: ARGS go to Hydra unchanged (overrides, -m sweeps, every Hydra flag).

Before Hydra creates any folder, the overrides are checked (unknown options, misspelt keys,
values out of range): a problem is one ``ltune:`` line. In a sweep, a job that fails leaves
``failed.json`` and the others go on; the sweep then exits 1 naming the failed jobs. A sweep
run again into the same ``hydra.sweep.dir`` skips finished jobs and resumes unfinished ones.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from hydra.experimental.callback import Callback

from ltune import config as configs
from ltune import run_files
from ltune.errors import LtuneError


#: Run folders that existed before this command started: a refused or failed run never removes them
#: (another process may be training there, or they hold an earlier run's records).
_EXISTING_RUN_DIRS: set[Path] = set()


def train_command(args: list[str]) -> None:
    import hydra

    checking = not any(a in ("--help", "-h", "--hydra-help", "--info") or a.startswith("--cfg") for a in args)
    if checking:
        configs.check_overrides(args)
        configs.check_run_configs(args)
    resume = resume_overrides(args)
    if resume is None:
        return  # resume=auto found only a finished run of this config: nothing to resume, nothing trained
    args = [*args, *resume]
    _EXISTING_RUN_DIRS.clear()
    if checking and not any(r.startswith("hydra.run.dir=") for r in resume) and not is_multirun(args):
        run_dir = explicit_run_dir(args)
        if run_dir is not None:
            check_run_dir_is_free(run_dir)
            if run_dir.exists():
                _EXISTING_RUN_DIRS.add(run_dir.resolve())
    rank = int(os.environ.get("RANK", "0"))
    if rank > 0:  # data-parallel workers: rank 0 alone writes the run folder and the logs
        scratch = tempfile.mkdtemp(prefix=f"ltune-rank{rank}-")
        args = [*args, f"hydra.run.dir={scratch}", "hydra.output_subdir=null", "hydra/job_logging=disabled",
                "hydra/hydra_logging=disabled"]
    task = hydra.main(config_path=str(configs.CONF_DIR), config_name="config", version_base=None)(train_task)
    sys.argv = ["ltune train", *args]
    configs.register_schema()
    task()


def is_multirun(args: list[str]) -> bool:
    return any(a in ("-m", "--multirun") for a in args)


def explicit_run_dir(args: list[str]) -> Path | None:
    """The folder a single run will use when the command line names it (hydra.run.dir=...);
    None for the default, a new folder named by the time to the microsecond."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    texts = configs.override_args(args)
    if not any(o.get_key_element() == "hydra.run.dir" for o in OverridesParser.create().parse_overrides(texts)):
        return None
    from omegaconf.errors import OmegaConfBaseException

    cfg = configs.compose(texts, configs.extra_config_dirs(args), hydra_config=True)
    try:
        return Path(str(cfg.hydra.run.dir))
    except OmegaConfBaseException:  # an interpolation only a running Hydra job resolves (${hydra:...})
        return None


def check_run_dir_is_free(run_dir: Path) -> None:
    """Before Hydra writes anything into it: a run folder that another process trains, that holds
    a finished run or an unfinished one (without resume=) is refused, and left as it is."""
    run_files.check_folder_path(run_dir, "hydra.run.dir")
    holder = run_files.RunLock.holder(run_dir)
    if holder:
        raise LtuneError(f"run folder {run_dir} is being trained by {holder}; give another hydra.run.dir, or wait "
                         f"for it to finish (or stop it)")
    if (run_dir / run_files.METRICS).exists():
        raise LtuneError(f"run folder {run_dir} already holds a finished run; it is never overwritten: give another "
                         f"hydra.run.dir")
    if (run_dir / run_files.CHECKPOINT).exists():
        raise LtuneError(f"run folder {run_dir} holds an unfinished run; continue it with resume={run_dir}")


def train_task(cfg) -> dict | None:
    """One Hydra job: a run in Hydra's output folder."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if cfg.get("pack"):
        return train_pack_task(cfg, Path(hydra_cfg.sweep.dir))
    resume = cfg.get("resume") is not None
    if multirun:
        (run_dir / run_files.FAILED).unlink(missing_ok=True)
    try:
        if multirun:
            done = finished_run_of(cfg, run_dir)
            if done is not None:  # the same sweep run again: this job already finished
                print(f"ltune: {run_dir} already finished; skipped", flush=True)
                return done
        if multirun and not resume:
            resume = unfinished_run_of(cfg, run_dir)
        if resume:  # the run continues with the config it started with
            cfg = configs.load_run_config(run_dir / run_files.CONFIG)
        configs.validate(cfg)
        group = Path(hydra_cfg.sweep.dir).name if multirun else None
        from ltune.train import train

        metrics = train(cfg, run_dir, group, resume=resume)
    except LtuneError as err:
        print(f"ltune: {err}", file=sys.stderr)
        if multirun:
            record_failure(run_dir, str(err))
            return None
        if run_dir.resolve() not in _EXISTING_RUN_DIRS:
            remove_unfinished(run_dir)
        sys.exit(2)
    except Exception as err:
        if not multirun:
            raise  # a bug: the traceback is what the user needs
        import traceback

        print(f"ltune: job failed: {type(err).__name__}: {err}", file=sys.stderr)
        record_failure(run_dir, f"{type(err).__name__}: {err}", traceback.format_exc())
        return None
    if "status" not in metrics:
        return metrics  # a non-zero rank of a data-parallel run: rank 0 reports
    dev = ", ".join(f"{k} {v:.4f}" for k, v in metrics["dev"].items() if k != "examples")
    print(f"ltune: dev {dev} (selected at step {metrics['selection']['best_step']} on held-out)")
    print(f"ltune: run folder {run_dir}")
    return metrics


def member_configs(cfg, sweep_dir: Path) -> list[tuple[object, Path]]:
    """(config, run folder) of every run of the pack file ``cfg.pack`` names: the job's own config with each
    member's overrides (its seed, rate and per-run options) applied, ``pack`` cleared (a packed run's
    config.yaml is the run's alone)."""
    import json

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf, open_dict

    members = json.loads(Path(str(cfg.pack)).read_text())["members"]
    parser = OverridesParser.create()
    found = []
    for member in members:
        own = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
        for override in parser.parse_overrides(member["overrides"]):
            key = override.get_key_element()
            if key.lstrip("+~") not in configs.GROUPS:  # group choices are the pack's, the same for every member
                with open_dict(own):
                    OmegaConf.update(own, key, override.value(), force_add=True)
        with open_dict(own):
            own.pack = None
        found.append((configs.onto_schema(own), sweep_dir / member["folder"]))
    return found


def train_pack_task(cfg, sweep_dir: Path) -> dict | None:
    """One launcher job that trains a pack: each member skipped when finished, resumed when unfinished,
    trained fresh otherwise; the rest train together (ltune/packed.py). A problem fails every member that
    was to train, in its own failed.json; the sweep goes on."""
    from ltune.packed import train_pack

    todo, done = [], []
    try:
        for member, run_dir in member_configs(cfg, sweep_dir):
            (run_dir / run_files.FAILED).unlink(missing_ok=True)
            if finished_run_of(member, run_dir) is not None:
                print(f"ltune: {run_dir} already finished; skipped", flush=True)
                continue
            resume = unfinished_run_of(member, run_dir)
            if resume:
                member = configs.load_run_config(run_dir / run_files.CONFIG)
            configs.validate(member)
            todo.append((member, run_dir, resume))
        if todo:
            done = train_pack([m for m, _, _ in todo], [d for _, d, _ in todo], [r for _, _, r in todo],
                              Path(sweep_dir).name)
    except LtuneError as err:
        print(f"ltune: {err}", file=sys.stderr)
        for _, run_dir, _ in todo:
            record_failure(run_dir, str(err))
        return None
    except Exception as err:
        import traceback

        print(f"ltune: pack failed: {type(err).__name__}: {err}", file=sys.stderr)
        for _, run_dir, _ in todo:
            record_failure(run_dir, f"{type(err).__name__}: {err}", traceback.format_exc())
        return None
    for metrics in done:
        dev = ", ".join(f"{k} {v:.4f}" for k, v in metrics["dev"].items() if k != "examples")
        print(f"ltune: dev {dev} (selected at step {metrics['selection']['best_step']} on held-out)")
    return done[0] if done else None


#: Settings that do not change what a run measures: a sweep's finished jobs are kept and its
#: unfinished ones resumed whatever their values (a sweep moved with its output root, run again with
#: another LTUNE_OUTPUT_DIR or logger, or with jobs side by side on fewer CPU threads each; threads
#: change the last bits of floating-point sums, not the protocol).
RESULT_FREE_KEYS = ("resume", "output_root", "logger", "trainer.num_threads", "pack")


def saved_differences(cfg, run_dir: Path) -> list[str]:
    """The settings in which the run saved in ``run_dir`` differs from ``cfg``."""
    from omegaconf import OmegaConf

    saved = OmegaConf.to_container(OmegaConf.load(run_dir / run_files.CONFIG), resolve=True)
    wanted = OmegaConf.to_container(cfg, resolve=True)
    return configs.differing_settings(saved, wanted, skip=RESULT_FREE_KEYS)


def another_config(run_dir: Path, state: str, differences: list[str]) -> LtuneError:
    shown = ", ".join(differences[:5]) + (f" and {len(differences) - 5} more" if len(differences) > 5 else "")
    return LtuneError(f"{run_dir} holds {state} run of another config (it differs in {shown}); give the sweep "
                      f"another hydra.sweep.dir or remove that folder")


def finished_run_of(cfg, run_dir: Path) -> dict | None:
    """The metrics of a finished run of this very config in ``run_dir`` (None: no finished run).
    A finished run of another config (the sweep run again with changed settings) is an error:
    keeping it would report the old settings' numbers under the new ones."""
    done = run_files.read_metrics(run_dir)
    if done is None:
        return None
    if (run_dir / run_files.CONFIG).is_file():
        differences = saved_differences(cfg, run_dir)
        if differences:
            raise another_config(run_dir, "a finished", differences)
    return done


def unfinished_run_of(cfg, run_dir: Path) -> bool:
    """Whether ``run_dir`` holds an unfinished run (a checkpoint) of this very config."""
    if not (run_dir / run_files.CHECKPOINT).is_file() or not (run_dir / run_files.CONFIG).is_file():
        return False
    differences = saved_differences(cfg, run_dir)
    if differences:
        raise another_config(run_dir, "an unfinished", differences)
    run_files.checkpoint_bytes(run_dir / run_files.CHECKPOINT)  # damaged: this job fails in one line, others go on
    return True


def record_failure(run_dir: Path, error: str, trace: str | None = None) -> None:
    """One failed job never stops a sweep: it leaves failed.json, which the report lists."""
    record = {"status": "failed", "error": error}
    if trace:
        record["traceback"] = trace
    run_files.write_json(run_dir / run_files.FAILED, record)


def remove_unfinished(run_dir: Path) -> None:
    """A run that failed before its first checkpoint leaves nothing behind; one with a
    checkpoint (or a finished run) is kept."""
    if run_dir.is_dir() and not (run_dir / run_files.METRICS).exists() and not (run_dir / run_files.CHECKPOINT).exists():
        shutil.rmtree(run_dir, ignore_errors=True)


class SweepFailures(Callback):
    """At the end of a sweep: jobs that failed are named and the command exits 1."""

    def on_multirun_start(self, config, **kwargs) -> None:
        self.started = time.time()

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        failed = sorted(p.parent for p in sweep_dir.rglob(run_files.FAILED))
        if failed:
            names = ", ".join(str(p.relative_to(sweep_dir)) for p in failed)
            print(f"ltune: {len(failed)} job(s) of the sweep failed: {names} (each has {run_files.FAILED}); "
                  f"fix the cause and run the same command with hydra.sweep.dir={sweep_dir} to finish them",
                  file=sys.stderr)
            sys.exit(1)


# -- resume=DIR|auto ------------------------------------------------------------------------

def resume_overrides(args: list[str]) -> list[str] | None:
    """For resume=DIR|auto: check the folder and run Hydra in it. None: resume=auto found only a
    finished run of this config (it says where; nothing is trained)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    texts = configs.override_args(args)
    values = [o.value() for o in OverridesParser.create().parse_overrides(texts) if o.key_or_group == "resume"]
    if not values or values[0] is None:
        return []
    if str(values[0]) == "auto":
        overrides = [t for t in texts if not t.startswith("resume=")]
        extra_dirs = configs.extra_config_dirs(args)
        folder = newest_run_of(overrides, extra_dirs, finished=False)
        if folder is None:
            done = newest_run_of(overrides, extra_dirs, finished=True)
            if done is not None:
                print(f"ltune: resume=auto: a finished run of this config exists: {done} (its results are in "
                      f"{done / run_files.METRICS}); nothing to resume and nothing trained. To train another run "
                      f"of it anyway, leave out resume=auto", file=sys.stderr)
                return None
            print("ltune: resume=auto found no unfinished run of this config; starting a new run", file=sys.stderr)
            return ["resume=null"]
        check_not_training(folder)
        return [f"resume={folder}", f"hydra.run.dir={folder}"]
    folder = Path(str(values[0]))
    check_not_training(folder)
    if (folder / run_files.METRICS).is_file():
        raise LtuneError(f"resume={folder}: that run already finished (metrics.json); it is never overwritten")
    if not (folder / run_files.CONFIG).is_file() or not (folder / run_files.CHECKPOINT).is_file():
        raise LtuneError(f"resume={folder} is not an unfinished ltune run (it needs config.yaml and checkpoint.pt)")
    run_files.checkpoint_bytes(folder / run_files.CHECKPOINT)  # a damaged checkpoint: one line before anything loads
    return [f"hydra.run.dir={folder}"]


def check_not_training(folder: Path) -> None:
    holder = run_files.RunLock.holder(folder)
    if holder:
        raise LtuneError(f"run folder {folder} is being trained by {holder}; wait for it to finish (or stop it) "
                         f"before resuming it")


def newest_run_of(overrides: list[str], extra_dirs: list[Path], finished: bool = False) -> Path | None:
    """The newest run folder whose resolved config equals this one's: an unfinished one (with a
    checkpoint), or with ``finished`` a finished one (with metrics.json)."""
    from omegaconf import OmegaConf

    cfg = configs.compose(overrides, extra_dirs)
    wanted = OmegaConf.to_container(cfg, resolve=True)
    runs = Path(wanted["output_root"]) / "runs"
    marker = run_files.METRICS if finished else run_files.CHECKPOINT
    candidates = []
    for found in runs.glob(f"*/{marker}"):
        folder = found.parent
        if (not finished and (folder / run_files.METRICS).exists()) or not (folder / run_files.CONFIG).exists():
            continue
        saved = OmegaConf.to_container(OmegaConf.load(folder / run_files.CONFIG), resolve=True)
        if configs.same_settings(saved, wanted, skip=RESULT_FREE_KEYS):
            candidates.append(folder)
    return max(candidates, key=lambda f: f.stat().st_mtime) if candidates else None


def newest_unfinished_run(overrides: list[str], extra_dirs: list[Path]) -> Path | None:
    """The newest run folder whose resolved config equals this one's and that has a checkpoint."""
    return newest_run_of(overrides, extra_dirs, finished=False)

"""The ``ltune`` command. ``ltune train ARGS`` hands ARGS to Hydra unchanged."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ltune.errors import LtuneError

CONF_DIR = Path(os.environ.get("LTUNE_CONF_DIR", Path(__file__).resolve().parents[1] / "conf"))
#: Config groups a user picks by name on the command line.
GROUPS = ("model", "data", "method", "trainer", "logger", "experiment")

USAGE = """usage: ltune COMMAND [ARGS]

commands:
  train [OVERRIDES]   train one run (or a sweep with -m); ARGS go to Hydra unchanged,
                      e.g. ltune train method=l_prefix model=llama2 data=rte
                      ltune train --help   lists the config groups and options
  report FOLDER       tables (report.md, results.csv) and plots from every run under FOLDER
  eval run=DIR [data=NAME split=SPLIT glue_dir=DIR max_samples=N|all]
                      evaluate a trained run on any split or data set with the same labels
  predict run=DIR [text=... | file=F.txt|.jsonl|.csv | stdin] [labels='["a","b"]'] [format=table|jsonl]
                      label and every label's score; labels= gives open label texts (L-methods)
  explain run=DIR text='...' [text_pair='...'] [out=F.png]
                      every label's score for one text; L-prefix: the pooling weights over label tokens
  bench [KEY=VALUE]   step and evaluation speed of every method on one model (model=minilm|smollm2|...,
                      batch_size=16 seq_len=128 steps=20 warmup=3 precision=fp32|bf16 methods=a,b
                      attn=eager|sdpa|... compile=false|true fused=auto|true|false)

Config groups: model, data, method, trainer, logger, experiment (see README.md and conf/).
"""


def extra_config_dirs(args: list[str]) -> list[Path]:
    """Folders added with Hydra's --config-dir/-cd (a user's own data or model configs)."""
    dirs = []
    for i, arg in enumerate(args):
        if arg in ("--config-dir", "-cd") and i + 1 < len(args):
            dirs.append(Path(args[i + 1]))
        elif arg.startswith("--config-dir="):
            dirs.append(Path(arg.split("=", 1)[1]))
    return dirs


def group_options(group: str, extra_dirs: list[Path] = ()) -> list[str]:
    names = set()
    for folder in [CONF_DIR, *extra_dirs]:
        names.update(p.stem for p in (folder / group).glob("*.yaml") )
    return sorted(names)


def _overrides(args: list[str]) -> list[str]:
    """The override arguments, without Hydra's flags and their values."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--config-dir", "-cd", "--config-name", "-cn", "--config-path", "-cp", "--cfg", "-c",
                     "--package", "-p", "--info", "-i"):
            skip = arg not in ("--info", "-i")
        elif not arg.startswith("-"):
            out.append(arg)
    return out


def check_overrides(args: list[str]) -> None:
    """Fail early, in one line, on a config-group option that does not exist."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    overrides = _overrides(args)
    extra_dirs = extra_config_dirs(args)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as err:
        raise LtuneError(f"cannot parse the overrides: {str(err).splitlines()[0]}") from None
    for override in parsed:
        group = override.key_or_group.lstrip("+~")
        if group not in GROUPS:
            continue
        if override.is_sweep_override():
            values = list(override.sweep_string_iterator())
        else:
            values = [override.value()]
        valid = group_options(group, extra_dirs)
        for value in values:
            if str(value) not in valid:
                raise LtuneError(f"unknown {group} '{value}'; valid options: {', '.join(valid)}")


def check_keys(args: list[str]) -> None:
    """Compose the config once (first value of any sweep) so a misspelt key fails in one line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    plain = []
    texts = _overrides(args)
    for text, override in zip(texts, OverridesParser.create().parse_overrides(texts)):
        key = override.key_or_group
        if key.startswith("hydra"):
            continue
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            plain.append(f"{override.get_key_element()}={first}")
        else:
            plain.append(text)
    search = [f"hydra.searchpath=[{','.join('file://' + str(d.resolve()) for d in extra_config_dirs(args))}]"]
    try:
        compose_config(plain + search)
    except (HydraException, OmegaConfBaseException) as err:
        cause = err.__cause__ or err
        full_key = getattr(cause, "full_key", None)
        if full_key:
            parent = full_key.rsplit(".", 1)[0] if "." in full_key else ""
            base = compose_config([p for p in plain if p.split("=")[0] in GROUPS] + search)
            node = OmegaConf.select(base, parent) if parent else base
            keys = ", ".join(sorted(node.keys())) if hasattr(node, "keys") else ""
            where = f" under {parent}" if parent else ""
            raise LtuneError(f"unknown config key '{full_key}'; valid keys{where}: {keys}") from None
        raise LtuneError(" ".join(str(err).split())) from None


def _train_task(cfg) -> dict | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from ltune.train import train

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    resume = cfg.get("resume") is not None
    if resume:  # the run continues with the config it started with
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(run_dir / "config.yaml")
    try:
        group = Path(hydra_cfg.sweep.dir).name if multirun else None
        metrics = train(cfg, run_dir, group, resume=resume)
    except LtuneError as err:
        print(f"ltune: {err}", file=sys.stderr)
        if multirun:
            _record_failure(run_dir, str(err))
            return None
        _remove_unfinished(run_dir)
        sys.exit(2)
    except Exception as err:
        if not multirun:
            raise  # a bug: the traceback is what the user needs
        import traceback

        print(f"ltune: job failed: {type(err).__name__}: {err}", file=sys.stderr)
        _record_failure(run_dir, f"{type(err).__name__}: {err}", traceback.format_exc())
        return None
    if "run_dir" not in metrics and "status" not in metrics:
        return metrics  # a non-zero rank of a data-parallel run: rank 0 reports
    dev = ", ".join(f"{k} {v:.4f}" for k, v in metrics["dev"].items() if k != "examples")
    print(f"ltune: dev {dev} (selected at step {metrics['selection']['best_step']} on held-out)")
    print(f"ltune: run folder {run_dir}")
    return metrics


def _record_failure(run_dir: Path, error: str, trace: str | None = None) -> None:
    """One failed job never stops a sweep: it leaves failed.json, which the report lists."""
    from ltune.run_files import write_json

    record = {"status": "failed", "error": error}
    if trace:
        record["traceback"] = trace
    write_json(run_dir / "failed.json", record)


def _remove_unfinished(run_dir: Path) -> None:
    """A run that failed before its first checkpoint leaves nothing behind; one with a
    checkpoint (or a finished run) is kept."""
    if run_dir.is_dir() and not (run_dir / "metrics.json").exists() and not (run_dir / "checkpoint.pt").exists():
        shutil.rmtree(run_dir, ignore_errors=True)


def resume_overrides(args: list[str]) -> list[str]:
    """For resume=DIR|auto: check the folder and run Hydra in it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    texts = _overrides(args)
    values = [o.value() for o in OverridesParser.create().parse_overrides(texts) if o.key_or_group == "resume"]
    if not values or values[0] is None:
        return []
    if str(values[0]) == "auto":
        folder = newest_unfinished_run([t for t in texts if not t.startswith("resume=")], extra_config_dirs(args))
        if folder is None:
            print("ltune: resume=auto found no unfinished run of this config; starting a new run", file=sys.stderr)
            return ["resume=null"]
        return [f"resume={folder}", f"hydra.run.dir={folder}"]
    folder = Path(str(values[0]))
    if (folder / "metrics.json").is_file():
        raise LtuneError(f"resume={folder}: that run already finished (metrics.json); it is never overwritten")
    if not (folder / "config.yaml").is_file() or not (folder / "checkpoint.pt").is_file():
        raise LtuneError(f"resume={folder} is not an unfinished ltune run (it needs config.yaml and checkpoint.pt)")
    return [f"hydra.run.dir={folder}"]


def newest_unfinished_run(overrides: list[str], extra_dirs: list[Path]) -> Path | None:
    """The newest run folder whose resolved config equals this one's and that has a checkpoint."""
    from omegaconf import OmegaConf

    search = [f"hydra.searchpath=[{','.join('file://' + str(d.resolve()) for d in extra_dirs)}]"]
    cfg = compose_config(overrides + search)
    wanted = OmegaConf.to_container(cfg, resolve=True)
    runs = Path(wanted["output_root"]) / "runs"
    candidates = []
    for checkpoint in runs.glob("*/checkpoint.pt"):
        folder = checkpoint.parent
        if (folder / "metrics.json").exists() or not (folder / "config.yaml").exists():
            continue
        saved = OmegaConf.to_container(OmegaConf.load(folder / "config.yaml"), resolve=True)
        if _same_settings(saved, wanted, skip=("resume",)):
            candidates.append(folder)
    return max(candidates, key=lambda f: f.stat().st_mtime) if candidates else None


def _same_settings(saved: dict, wanted: dict, skip=()) -> bool:
    """Whether two resolved configs agree on every key both have. A key only one side has was
    added (or removed) by a later ltune version; the saved run's own config decides its value."""
    for key in saved.keys() & wanted.keys():
        if key in skip:
            continue
        if isinstance(saved[key], dict) and isinstance(wanted[key], dict):
            if not _same_settings(saved[key], wanted[key]):
                return False
        elif saved[key] != wanted[key]:
            return False
    return True


def train_command(args: list[str]) -> None:
    import hydra

    if not any(a in ("--help", "-h", "--hydra-help", "--info") or a.startswith("--cfg") for a in args):
        check_overrides(args)
        check_keys(args)
    args = [*args, *resume_overrides(args)]
    rank = int(os.environ.get("RANK", "0"))
    if rank > 0:  # data-parallel workers: rank 0 alone writes the run folder and the logs
        import tempfile

        scratch = tempfile.mkdtemp(prefix=f"ltune-rank{rank}-")
        args = [*args, f"hydra.run.dir={scratch}", "hydra.output_subdir=null", "hydra/job_logging=disabled",
                "hydra/hydra_logging=disabled"]
    task = hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)(_train_task)
    sys.argv = ["ltune train", *args]
    task()


def compose_config(overrides: list[str]):
    """The config ``ltune train OVERRIDES`` would use, without a run (Hydra's compose API)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose("config", overrides=overrides)


def bench_command(args: list[str]) -> None:
    from ltune.bench import main as bench_main

    check_overrides([a for a in args if a.split("=")[0] in ("model", "data")])
    bench_main(args)


def report_command(args: list[str]) -> None:
    if len(args) != 1:
        raise LtuneError("usage: ltune report <sweep or outputs folder>")
    from ltune.report import report

    path = report(Path(args[0]))
    print(f"ltune: wrote {path}, results.csv and plots beside it")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command, args = argv[0], argv[1:]
    from ltune.use import eval_command, explain_command, predict_command

    commands = {"train": train_command, "report": report_command, "bench": bench_command, "eval": eval_command,
                "predict": predict_command, "explain": explain_command}
    try:
        if command not in commands:
            raise LtuneError(f"unknown command '{command}'; valid commands: {', '.join(commands)}")
        commands[command](args)
    except LtuneError as err:
        print(f"ltune: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

"""The ``ltune`` command. ``ltune train ARGS`` hands ARGS to Hydra unchanged."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ltune.errors import LtuneError

CONF_DIR = Path(os.environ.get("LTUNE_CONF_DIR", Path(__file__).resolve().parents[1] / "conf"))
#: Config groups a user picks by name on the command line.
GROUPS = ("model", "data", "method", "trainer", "logger")

USAGE = """usage: ltune COMMAND [ARGS]

commands:
  train [OVERRIDES]   train one run (or a sweep with -m); ARGS go to Hydra unchanged,
                      e.g. ltune train method=l_prefix model=llama2 data=rte
                      ltune train --help   lists the config groups and options

Config groups: model, data, method, trainer, logger (see README.md and conf/).
"""


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def check_overrides(args: list[str]) -> None:
    """Fail early, in one line, on a config-group option that does not exist."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    overrides = [a for a in args if not a.startswith("-")]
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
        valid = group_options(group)
        for value in values:
            if str(value) not in valid:
                raise LtuneError(f"unknown {group} '{value}'; valid options: {', '.join(valid)}")


def check_keys(args: list[str]) -> None:
    """Compose the config once (first value of any sweep) so a misspelt key fails in one line."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    plain = []
    for text, override in zip(
        [a for a in args if not a.startswith("-")],
        OverridesParser.create().parse_overrides([a for a in args if not a.startswith("-")]),
    ):
        key = override.key_or_group
        if key.startswith("hydra"):
            continue
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            plain.append(f"{override.get_key_element()}={first}")
        else:
            plain.append(text)
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            compose("config", overrides=plain)
    except (HydraException, OmegaConfBaseException) as err:
        cause = err.__cause__ or err
        full_key = getattr(cause, "full_key", None)
        if full_key:
            parent = full_key.rsplit(".", 1)[0] if "." in full_key else ""
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
                base = compose("config")
            node = base.select(parent) if parent else base
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
    try:
        metrics = train(cfg, run_dir)
    except LtuneError as err:
        print(f"ltune: {err}", file=sys.stderr)
        if multirun:  # one failed job never stops the sweep; it is recorded as failed
            from ltune.run_files import write_json

            write_json(run_dir / "failed.json", {"status": "failed", "error": str(err)})
            return None
        _remove_unfinished(run_dir)
        sys.exit(2)
    dev = ", ".join(f"{k} {v:.4f}" for k, v in metrics["dev"].items())
    print(f"ltune: dev {dev} (selected at step {metrics['selection']['best_step']} on held-out)")
    print(f"ltune: run folder {run_dir}")
    return metrics


def _remove_unfinished(run_dir: Path) -> None:
    """A run that failed before finishing leaves nothing behind (never a finished run's files)."""
    if run_dir.is_dir() and not (run_dir / "metrics.json").exists():
        shutil.rmtree(run_dir, ignore_errors=True)


def train_command(args: list[str]) -> None:
    import hydra

    if not any(a in ("--help", "-h", "--hydra-help", "--info") or a.startswith("--cfg") for a in args):
        check_overrides(args)
        check_keys(args)
    task = hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)(_train_task)
    sys.argv = ["ltune train", *args]
    task()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command, args = argv[0], argv[1:]
    commands = {"train": train_command}
    try:
        if command not in commands:
            raise LtuneError(f"unknown command '{command}'; valid commands: {', '.join(commands)}")
        commands[command](args)
    except LtuneError as err:
        print(f"ltune: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

"""Experiment trackers beside the local files (which every run writes regardless).

``logger=none``: nothing beyond the run folder. ``logger=wandb``: one W&B run per job,
offline unless the user sets online mode, its folder inside the run folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

from ltune.errors import LtuneError


class NoLogger:
    def log(self, record: dict, step: int) -> None:
        pass

    def summary(self, values: dict) -> None:
        pass

    def finish(self, failed: bool = False) -> None:
        pass


def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}/"))
        elif isinstance(value, (int, float)):
            flat[name] = value
    return flat


class WandbLogger:
    def __init__(self, cfg, run_dir: Path, group: str | None):
        try:
            import wandb
        except ImportError:
            raise LtuneError("logger=wandb needs the wandb package: pip install wandb") from None
        self.wandb = wandb
        mode = cfg.logger.mode or os.environ.get("WANDB_MODE") or "offline"
        if mode not in ("offline", "online", "disabled"):
            raise LtuneError(f"unknown logger.mode '{mode}'; valid: offline, online, disabled")
        config = OmegaConf.to_container(cfg, resolve=True)
        config.pop("logger", None)
        self.run = wandb.init(
            project=cfg.logger.project,
            entity=cfg.logger.entity,
            group=cfg.logger.group or group,
            name=cfg.run_name,
            tags=list(cfg.logger.tags or []),
            config=config,
            dir=str(run_dir),
            mode=mode,
            reinit="finish_previous",
        )

    def log(self, record: dict, step: int) -> None:
        self.run.log(_flatten(record), step=step)

    def summary(self, values: dict) -> None:
        for key, value in _flatten(values).items():
            self.run.summary[key] = value

    def finish(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


def make_logger(cfg, run_dir: Path, group: str | None = None):
    name = cfg.logger.name
    if name == "none":
        return NoLogger()
    if name == "wandb":
        return WandbLogger(cfg, run_dir, group)
    raise LtuneError(f"unknown logger '{name}'; valid: none, wandb")

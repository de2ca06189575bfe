import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "disabled")

REPO = Path(__file__).resolve().parents[1]


def glue_dir() -> Path | None:
    candidates = [os.environ.get("LTUNE_GLUE_DIR"), REPO.parent / "shared" / "data" / "glue"]
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
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from ltune.cli import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return hydra_compose("config", overrides=list(overrides))

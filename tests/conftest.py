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
    from ltune.config import compose

    return compose(list(overrides))

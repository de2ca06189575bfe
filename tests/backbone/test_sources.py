"""Where a model's files come from, checked before anything loads (issue 43, item 11): a hub id that is
offline and not cached, a path that is no folder, a folder that lacks its parts, each in one line and
without importing torch or transformers (the check runs in a fresh interpreter here to see that)."""

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from ltune.backbone.sources import check_model_source, looks_like_a_path
from ltune.errors import LtuneError

CHECK = """
import sys
from omegaconf import OmegaConf
from ltune.backbone.sources import check_model_source
from ltune.errors import LtuneError
try:
    check_model_source(OmegaConf.create({"name": "llama2", "path": "meta-llama/Llama-2-7b-hf"}))
except LtuneError as err:
    print(err)
print("torch imported:", "torch" in sys.modules, "transformers imported:", "transformers" in sys.modules)
"""


def test_an_offline_hub_model_is_refused_without_importing_torch(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, env=env, timeout=120)
    assert "needs 'meta-llama/Llama-2-7b-hf' from the Hugging Face hub, which is offline here" in done.stdout, done.stderr
    assert "torch imported: False transformers imported: False" in done.stdout


def test_a_cached_hub_model_passes_offline(tmp_path, monkeypatch):
    """A hub id whose config.json is in the cache is what an offline machine can load."""
    snapshot = tmp_path / "hf" / "hub" / "models--org--tiny" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hf" / "hub" / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "hf" / "hub" / "models--org--tiny" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    check_model_source(OmegaConf.create({"name": "tiny", "path": "org/tiny"}))


@pytest.mark.parametrize("path, message", [("./not/there", "is not a folder"), ("/nowhere/model", "is not a folder")])
def test_a_path_that_is_no_folder_is_refused(path, message):
    assert looks_like_a_path(path)
    with pytest.raises(LtuneError, match=message):
        check_model_source(OmegaConf.create({"name": "x", "path": path}))


def test_a_hub_id_is_not_taken_for_a_path():
    assert not looks_like_a_path("bert-base-uncased") and not looks_like_a_path("meta-llama/Llama-2-7b-hf")

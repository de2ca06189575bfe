"""Composing users' data (issue 21, item 4): the offline advice for a hub data set works as printed."""

import json

from ltune import config as configs


def test_hub_data_with_local_files_as_the_offline_error_advises(tmp_path):
    """data=cb 'data.files={train: ..., validation: ...}' (what the offline error says to give)
    composes and passes every check; it was an OmegaConf traceback ('NoneType' object has no
    attribute 'get', full_key data.files)."""
    for split in ("train", "dev"):
        (tmp_path / f"{split}.jsonl").write_text(json.dumps({"premise": "a", "hypothesis": "b", "label": 0}) + "\n")
    args = ["data=cb", f"data.files={{train: {tmp_path / 'train.jsonl'}, validation: {tmp_path / 'dev.jsonl'}}}"]
    configs.check_overrides(args)
    configs.check_run_configs(args)
    cfg = configs.compose(args)
    assert dict(cfg.data.files) == {"train": str(tmp_path / "train.jsonl"), "validation": str(tmp_path / "dev.jsonl")}


def test_a_typo_is_refused_before_torch_or_transformers_is_imported():
    """Bug: `ltune train method=lprefix` imported torch, transformers and scikit-learn (8 s here)
    before it said the option is unknown: the config schema reached the method models through the
    method registry and the metric functions. Checking overrides now imports neither."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from ltune import config\n"
            "from ltune.errors import LtuneError\n"
            "try:\n"
            "    config.check_overrides(['method=lprefix'])\n"
            "except LtuneError as err:\n"
            "    print(err)\n"
            "print(sorted(m for m in ('torch', 'transformers', 'sklearn') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "unknown method 'lprefix'" in result.stdout, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"

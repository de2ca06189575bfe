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

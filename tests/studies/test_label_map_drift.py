import pytest
import torch

from studies.offline_table_smollm2.scripts.label_map_drift import drift
from ltune.methods import METHODS
from tests.tiny import LABEL_TEXTS, method_cfg, one_thread, tiny_backbone  # noqa: F401


def started(name: str, init: str):
    return METHODS[name].model(tiny_backbone("llama"), method_cfg(name, init=init), LABEL_TEXTS).eval()


@pytest.mark.parametrize("name,init", [("l_prompt", "text"), ("l_prompt", "identity"), ("l_prefix", "text")])
def test_unchanged_maps_have_not_moved_and_doubled_ones_moved_by_their_length(name, init):
    method = started(name, init)
    same = drift(method, method.trainable_state_dict())
    assert same["moved"] == 0 and same["norm"] == same["start_norm"] > 0
    doubled = {k: (2 * v if not k.startswith("head.") and k != "pool_weight" else v)
               for k, v in started(name, init).trainable_state_dict().items()}
    row = drift(started(name, init), doubled)
    assert row["norm"] == pytest.approx(2 * row["start_norm"], rel=1e-3)
    assert row["moved"] == pytest.approx(row["start_norm"], rel=1e-3)
    if name == "l_prompt":
        assert row["map_change"] == pytest.approx(1.0, rel=1e-3) and row["word_norm"] > 0
    else:
        assert row["map_change"] == "" and row["word_norm"] == ""


def test_a_text_started_l_prompt_starts_at_its_label_words_scale():
    row = drift(started("l_prompt", "text"), started("l_prompt", "text").trainable_state_dict())
    assert row["start_norm"] == pytest.approx(row["word_norm"], rel=1e-2)

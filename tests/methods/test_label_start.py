"""Label texts a causal model can read: a decoder-only model gives label texts' shared first tokens the
same states for every label, so training warns and names the way out; an encoder reads every position
in both directions and gets no warning."""

import pytest

from ltune.methods import METHODS
from tests.tiny import method_cfg, one_thread, tiny_backbone  # noqa: F401

SHARED = ["the sentiment of this review is negative", "the sentiment of this review is positive"]


def warnings_of(family: str, method: str, texts: list[str]) -> list[str]:
    backbone = tiny_backbone(family)
    return METHODS[method].model(backbone, method_cfg(method), texts).start_warnings()


@pytest.mark.parametrize("method", ["l_prefix", "l_prompt"])
def test_a_decoder_reading_label_texts_with_a_shared_start_is_warned(method):
    lines = [line for line in warnings_of("llama", method, SHARED) if "share their first" in line]
    assert len(lines) == 1
    assert lines[0].startswith("ltune: warning: the label texts share their first 6 tokens ('the sentiment of this "
                               "review is')") and "data.label_text_kind=label_first" in lines[0]


def test_no_warning_for_an_encoder_or_for_texts_apart_from_their_first_word():
    from ltune.data.label_texts import label_first

    assert not any("share their first" in line for line in warnings_of("bert", "l_prefix", SHARED))
    assert not any("share their first" in line for line in warnings_of("llama", "l_prefix", label_first(SHARED)))

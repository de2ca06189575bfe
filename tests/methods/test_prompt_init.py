"""L-prompt's method.init=text: G fitted so that each label's soft prompt is its label text's own word
embeddings, so that the model first reads every pair exactly as "label text, then text"."""

import pytest
import torch

from ltune.methods import METHODS
from tests.tiny import LABEL_TEXTS, method_cfg, one_thread, tiny_backbone  # noqa: F401 (one_thread applies here)

TEXT = "a short text about the weather"


def pooled_under_each_label(backbone, init: str):
    method = METHODS["l_prompt"].model(backbone, method_cfg("l_prompt", init=init), LABEL_TEXTS).eval()
    ids = backbone.tokenize([TEXT])["input_ids"][0]
    batch = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
    with torch.no_grad():
        prompts = method.prompt_map(method.label_states)
        for k in range(len(LABEL_TEXTS)):
            words = method.label_ids[k][method.label_mask[k]].tolist()
            read = torch.tensor([words + ids])
            pooled = backbone.encode(batch["input_ids"], batch["attention_mask"], prompt=prompts[k:k + 1],
                                     prompt_mask=method.label_mask[k:k + 1])
            yield LABEL_TEXTS[k], pooled, backbone.encode(read, torch.ones_like(read))


@pytest.mark.parametrize("family", ["llama", "falcon", "bloom"])
def test_l_prompt_started_from_label_words_reads_each_label_in_front(family):
    for label, pooled, plain in pooled_under_each_label(tiny_backbone(family), "text"):
        torch.testing.assert_close(pooled, plain, atol=1e-4, rtol=1e-3, msg=label)


def test_identity_start_does_not_read_as_the_label_words():
    for label, pooled, plain in pooled_under_each_label(tiny_backbone("llama"), "identity"):
        assert not torch.allclose(pooled, plain, atol=1e-3), label


def test_text_start_still_trains():
    backbone = tiny_backbone("llama")
    method = METHODS["l_prompt"].model(backbone, method_cfg("l_prompt", init="text"), LABEL_TEXTS)
    assert method.prompt_map.weight.requires_grad and method.prompt_map.weight.abs().sum() > 0


def start_warnings(family: str, init: str) -> list[str]:
    backbone = tiny_backbone(family)
    return METHODS["l_prompt"].model(backbone, method_cfg("l_prompt", init=init), LABEL_TEXTS).start_warnings()


def test_an_identity_start_far_from_the_word_embeddings_scale_is_flagged_on_a_decoder():
    (line,) = start_warnings("llama", "identity")
    assert line.startswith("ltune: warning: L-prompt's identity start") and "method.init=text" in line


@pytest.mark.parametrize("family, init", [("llama", "text"), ("bert", "identity"), ("bloom", "identity")])
def test_no_warning_from_the_text_start_or_on_models_that_normalise_their_embeddings(family, init):
    assert start_warnings(family, init) == []


def test_the_flag_compares_the_measured_norms():
    backbone = tiny_backbone("llama")
    method = METHODS["l_prompt"].model(backbone, method_cfg("l_prompt"), LABEL_TEXTS)
    prompt, words = method.prompt_and_word_norms()
    assert prompt > 3 * words  # a tiny random Llama's last states (RMS-normed) dwarf its 0.02-std embeddings
    with torch.no_grad():
        method.prompt_map.weight.mul_(words / prompt)  # scaled to the embeddings: nothing to flag
    assert method.start_warnings() == []

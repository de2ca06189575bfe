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

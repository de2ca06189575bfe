import numpy as np
import pytest
import torch

from scripts.prefix_probe import pooled, probe_accuracy, starts
from tests.tiny import LABEL_TEXTS, method_cfg, one_thread, tiny_backbone  # noqa: F401


def test_probe_separates_separable_features_and_not_noise():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    signal = rng.normal(size=(400, 8)) + 3 * labels[:, None]
    assert probe_accuracy(signal[:300], labels[:300], signal[300:], labels[300:]) > 0.95
    noise = rng.normal(size=(400, 8))
    assert probe_accuracy(noise[:300], labels[:300], noise[300:], labels[300:]) < 0.7


@pytest.mark.parametrize("family", ["llama", "bert"])  # bert: token type ids
def test_the_starts_and_none_pools_as_the_plain_model(family):
    backbone = tiny_backbone(family)
    prefixes = starts(backbone, dict(method_cfg("prefix").__dict__), LABEL_TEXTS)
    assert set(prefixes) == {"none", "random", "random x 0.01", "text"}
    texts = ["one short text", "and a second, longer one"]
    plain = pooled(backbone, texts, None)
    ids = backbone.tokenize(texts)["input_ids"]
    by_hand = torch.cat([backbone.encode(torch.tensor([i]), torch.ones(1, len(i), dtype=torch.long),
                                         torch.zeros(1, len(i), dtype=torch.long) if backbone.uses_token_types else None)
                         for i in ids])
    np.testing.assert_allclose(plain, by_hand.detach().numpy(), atol=1e-5)
    assert not np.allclose(pooled(backbone, texts, prefixes["random"]), plain, atol=1e-3)
    torch.testing.assert_close(prefixes["random x 0.01"], 0.01 * prefixes["random"])


@pytest.mark.parametrize("name,init", [("l_prefix", "text"), ("l_prompt", "identity"), ("l_prompt", "text")])
def test_label_rows_probe_the_label_difference(name, init):
    from types import SimpleNamespace

    from scripts.prefix_probe import label_rows

    backbone = tiny_backbone("llama")
    texts = ["good film", "bad film", "a fine day", "a poor day", "lovely", "awful"] * 4
    examples = [SimpleNamespace(texts=[t], label=i % 2) for i, t in enumerate(texts)]
    accuracies, length, norms = label_rows(backbone, ["it is negative", "it is positive"], examples[:16],
                                           examples[16:], name, init)
    assert set(accuracies) == {f"{name} {init}: {row}" for row in ("label 1", "label difference", "pair agreement")}
    assert all(0.0 <= a <= 1.0 for a in accuracies.values()) and length == 3
    if name == "l_prompt" and init == "text":  # the prompt is the label's word embeddings
        assert norms["prompt_norm"] == pytest.approx(norms["word_norm"], rel=1e-3)
    elif name == "l_prompt":  # the label's last states, which a tiny random model keeps at another scale
        assert norms["prompt_norm"] != pytest.approx(norms["word_norm"], rel=1e-2)
    else:
        assert norms == {}


def test_pooling_under_a_prompt_matches_the_backbone_text_by_text():
    from ltune.methods import build_method, method_config

    backbone = tiny_backbone("llama")
    method = build_method(method_config({"name": "l_prompt", "init": "text"}), backbone, ["it is good", "it is bad"]).eval()
    with torch.no_grad():
        prompt = method.prompt_map(method.label_states)[:1]
    texts = ["good film", "a rather poor day out"]
    ours = pooled(backbone, texts, None, method.label_mask[:1], prompt=prompt)
    for text, row in zip(texts, ours):
        ids = torch.tensor(backbone.tokenize([text])["input_ids"])
        with torch.no_grad():
            alone = backbone.encode(ids, torch.ones_like(ids), prompt=prompt, prompt_mask=method.label_mask[:1])
        np.testing.assert_allclose(row, alone[0].numpy(), atol=1e-4, rtol=1e-3)
    assert not np.allclose(ours, pooled(backbone, texts, None), atol=1e-3)

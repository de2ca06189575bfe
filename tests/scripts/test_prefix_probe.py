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


def test_l_prefix_rows_probe_the_label_difference():
    from types import SimpleNamespace

    from scripts.prefix_probe import l_prefix_rows

    backbone = tiny_backbone("llama")
    texts = ["good film", "bad film", "a fine day", "a poor day", "lovely", "awful"] * 4
    examples = [SimpleNamespace(texts=[t], label=i % 2) for i, t in enumerate(texts)]
    accuracies, length = l_prefix_rows(backbone, ["it is negative", "it is positive"], examples[:16], examples[16:])
    assert set(accuracies) == {"l_prefix text: label 1", "l_prefix text: label difference"}
    assert all(0.0 <= a <= 1.0 for a in accuracies.values()) and length == 3

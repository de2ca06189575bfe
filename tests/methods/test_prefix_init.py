"""method.init: a prefix started from the model's own keys/values (prefix: init=text; L-prefix:
init=text (its label texts)) makes a decoder read its input exactly as it would after those words."""

import pytest
import torch

from ltune.errors import LtuneError
from ltune.methods import METHODS
from tests.tiny import LABEL_TEXTS, method_cfg, one_thread, tiny_backbone  # noqa: F401 (one_thread applies here)

DECODERS = ["llama", "falcon", "bloom"]
TEXT = "a short text about the weather"


def read_after(backbone, words: list[int], text_ids: list[int]) -> torch.Tensor:
    """The pooled vector of the plain model reading ``words`` then the text (no prefix)."""
    ids = torch.tensor([words + text_ids])
    return backbone.encode(ids, torch.ones_like(ids))


def text_batch(backbone):
    ids = backbone.tokenize([TEXT])["input_ids"][0]
    return ids, {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}


@pytest.mark.parametrize("family", DECODERS)
def test_prefix_started_from_text_reads_as_that_text_in_front(family):
    backbone = tiny_backbone(family)
    cfg = method_cfg("prefix", init="text", init_text="the following words come first here")
    method = METHODS["prefix"].model(backbone, cfg, LABEL_TEXTS).eval()
    ids, batch = text_batch(backbone)
    words = backbone.label_batch([cfg.init_text])["input_ids"][0, : cfg.num_virtual_tokens].tolist()
    with torch.no_grad():
        pooled = backbone.encode(batch["input_ids"], batch["attention_mask"], prefix_kv=method.prefix_kv(1))
        torch.testing.assert_close(pooled, read_after(backbone, words, ids), atol=1e-5, rtol=1e-4)
        # and a random prefix does not: the check can fail
        random = METHODS["prefix"].model(tiny_backbone(family), method_cfg("prefix"), LABEL_TEXTS).eval()
        other = backbone.encode(batch["input_ids"], batch["attention_mask"], prefix_kv=random.prefix_kv(1))
        assert not torch.allclose(other, pooled, atol=1e-3)


@pytest.mark.parametrize("z_input", ["pooling", "states"])
@pytest.mark.parametrize("family", DECODERS)
def test_l_prefix_started_from_label_text_reads_each_label_in_front(family, z_input):
    backbone = tiny_backbone(family)
    method = METHODS["l_prefix"].model(backbone, method_cfg("l_prefix", init="text", z_input=z_input),
                                       LABEL_TEXTS).eval()
    ids, batch = text_batch(backbone)
    prefixes = method.label_prefixes()
    with torch.no_grad():
        for k, label in enumerate(LABEL_TEXTS):
            real = method.label_mask[k]
            words = method.label_ids[k][real].tolist()
            pooled = backbone.encode(batch["input_ids"], batch["attention_mask"], prefix_kv=prefixes[:, :, k:k + 1],
                                     prefix_mask=method.label_mask[k:k + 1])
            torch.testing.assert_close(pooled, read_after(backbone, words, ids), atol=1e-4, rtol=1e-3, msg=label)


def test_random_l_prefix_does_not_read_as_the_label_text():
    backbone = tiny_backbone("llama")
    method = METHODS["l_prefix"].model(backbone, method_cfg("l_prefix"), LABEL_TEXTS).eval()
    ids, batch = text_batch(backbone)
    with torch.no_grad():
        pooled = backbone.encode(batch["input_ids"], batch["attention_mask"], prefix_kv=method.label_prefixes()[:, :, :1],
                                 prefix_mask=method.label_mask[:1])
        words = method.label_ids[0][method.label_mask[0]].tolist()
        assert not torch.allclose(pooled, read_after(backbone, words, ids), atol=1e-3)


def test_text_init_still_trains():
    backbone = tiny_backbone("llama")
    method = METHODS["prefix"].model(backbone, method_cfg("prefix", init="text"), LABEL_TEXTS)
    assert method.prefix.requires_grad and method.prefix.abs().sum() > 0


def test_init_text_shorter_than_the_prefix_is_one_line():
    backbone = tiny_backbone("llama")
    with pytest.raises(LtuneError, match="init_text has 2 tokens.*num_virtual_tokens=4"):
        METHODS["prefix"].model(backbone, method_cfg("prefix", init="text", init_text="two words"), LABEL_TEXTS)


def test_text_init_with_reparameterisation_is_refused():
    with pytest.raises(LtuneError, match="init=text.*reparameterize"):
        method_cfg("prefix", init="text", reparameterize=True)


@pytest.mark.parametrize("name,init", [("prefix", "text"), ("l_prefix", "text")])
def test_models_without_a_key_value_cache_refuse_the_real_start(name, init):
    backbone = tiny_backbone("deberta")
    with pytest.raises(LtuneError, match="init=random"):
        METHODS[name].model(backbone, method_cfg(name, init=init), LABEL_TEXTS)

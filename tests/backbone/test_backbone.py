import os
import shutil

import pytest
import torch

from ltune.backbone import Backbone, kv_layout
from ltune.errors import LtuneError
from tests.tiny import FAMILIES, NEW_FAMILIES, one_thread, tiny_backbone, tiny_config  # noqa: F401

ALL_FAMILIES = FAMILIES + NEW_FAMILIES


def batch_of(backbone, texts):
    encoded = backbone.tokenize(texts)
    return backbone.pad([{k: v[i] for k, v in encoded.items()} for i in range(len(texts))])


def random_prefix(backbone, batch, length=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    shape = (backbone.num_layers, 2, batch, backbone.num_kv_heads, length, backbone.head_dim)
    return torch.randn(shape, generator=g)


def test_kv_layout_follows_key_value_heads_not_attention_heads():
    assert kv_layout(tiny_config("falcon"))[1] == 1  # multi-query
    assert kv_layout(tiny_config("llama"))[1] == 2  # grouped-query, 4 attention heads
    assert kv_layout(tiny_config("bert"))[1] == 4


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_prefix_changes_the_text_states(family):
    backbone = tiny_backbone(family)
    batch = batch_of(backbone, ["a sentence about nothing", "short"])
    plain = backbone.hidden_states(**batch)[0]
    prefixed = backbone.hidden_states(**batch, prefix_kv=random_prefix(backbone, 2))[0]
    assert plain.shape == prefixed.shape
    assert (plain - prefixed).abs().max() > 1e-3


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_masked_prefix_positions_are_ignored(family):
    """A prefix whose mask is all zero leaves states as with a prefix of different content."""
    backbone = tiny_backbone(family)
    batch = batch_of(backbone, ["a sentence about nothing"])
    mask = torch.zeros(1, 3, dtype=torch.long)
    a = backbone.hidden_states(**batch, prefix_kv=random_prefix(backbone, 1, seed=1), prefix_mask=mask)[0]
    b = backbone.hidden_states(**batch, prefix_kv=random_prefix(backbone, 1, seed=2), prefix_mask=mask)[0]
    torch.testing.assert_close(a, b)


def test_deberta_prefix_with_nothing_visible_equals_no_prefix():
    """The DeBERTa patch: relative-position terms cover only real tokens, so a fully masked prefix is a no-op."""
    backbone = tiny_backbone("deberta")
    batch = batch_of(backbone, ["a sentence about nothing", "short"])
    plain = backbone.hidden_states(**batch)[0]
    masked = backbone.hidden_states(**batch, prefix_kv=random_prefix(backbone, 2), prefix_mask=torch.zeros(2, 3))[0]
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(plain[real], masked[real])


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_pooling_ignores_padding(family):
    backbone = tiny_backbone(family)
    alone = batch_of(backbone, ["the cat sat"])
    padded = batch_of(backbone, ["the cat sat", "a much longer sentence that forces several padding positions"])
    for kwargs in ({}, {"prompt": torch.randn(1, 2, backbone.embedding_width)}):
        a = backbone.encode(**alone, **kwargs)
        expanded = {k: v.expand(2, -1, -1) for k, v in kwargs.items()}
        b = backbone.encode(**padded, **expanded)
        torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("pooling,expected", [("cls", [2.0, 2.0]), ("mean", [1.0, 2.0]), ("last", [2.0, 4.0])])
def test_pooling_reads_the_right_positions(pooling, expected):
    """Prompt positions 0-1, text from position 2; mean covers every real position, prompt included."""
    backbone = tiny_backbone("bert")
    backbone.pooling = pooling
    hidden = torch.arange(6, dtype=torch.float).view(1, 6, 1).expand(2, 6, 1)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]])
    pooled = backbone.pool(hidden, mask, text_start=2)[:, 0]
    assert pooled.tolist() == expected


def test_backbone_is_frozen_and_pads_right():
    backbone = tiny_backbone("llama")
    assert not any(p.requires_grad for p in backbone.parameters())
    batch = batch_of(backbone, ["a b c d e", "a"])
    assert batch["attention_mask"][1].tolist()[0] == 1 and batch["attention_mask"][1].tolist()[-1] == 0


def test_position_limit_is_checked():
    backbone = tiny_backbone("bert", max_length=120)  # 128 positions
    backbone.check_fits(8)
    with pytest.raises(LtuneError, match="lower model.max_length to at most 119"):
        backbone.check_fits(9)


def test_unsupported_architecture_is_a_clear_error():
    from transformers import GPT2Config, GPT2Model

    from tests.tiny import tokenizer

    model = GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2))
    with pytest.raises(LtuneError, match="not supported; supported: bert"):
        Backbone(model, tokenizer(), pooling="last")


# -- label padding inside the input (issue 9, defect 1) ------------------------------------
# Label texts of different token lengths are padded to one length l, so a prefix or prompt may
# end in padded positions followed by the text. A padded position must act as if it were absent:
# invisible, taking no position, never pooled. Each family is checked against the same input
# with the padding cut away.

def _poolings(family):
    if family == "bert":
        return ("pooler", "cls", "mean")
    return ("last", "mean") if tiny_backbone(family).is_decoder else ("cls", "mean")


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_padded_prefix_positions_act_as_absent(family):
    backbone = tiny_backbone(family)
    batch = batch_of(backbone, ["the cat sat on the mat", "a dog"])
    kv = random_prefix(backbone, 2, length=5)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    hidden = backbone.hidden_states(**batch, prefix_kv=kv, prefix_mask=mask)[0]  # the text's states only
    for row, real in ((0, 3), (1, 5)):
        alone = {k: v[row:row + 1] for k, v in batch.items()}
        reference = backbone.hidden_states(**alone, prefix_kv=kv[:, :, row:row + 1, :, :real])[0]
        n = int(batch["attention_mask"][row].sum())
        torch.testing.assert_close(hidden[row, :n], reference[0, :n], atol=1e-5, rtol=1e-4)
    for pooling in _poolings(family):
        backbone.pooling = pooling
        together = backbone.encode(**batch, prefix_kv=kv, prefix_mask=mask)
        alone = backbone.encode(**{k: v[:1] for k, v in batch.items()}, prefix_kv=kv[:, :, :1, :, :3])
        torch.testing.assert_close(together[0], alone[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_padded_prompt_positions_act_as_absent(family):
    backbone = tiny_backbone(family)
    batch = batch_of(backbone, ["the cat sat on the mat", "a dog"])
    prompt = torch.randn(2, 5, backbone.embedding_width, generator=torch.Generator().manual_seed(3))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    for pooling in _poolings(family):
        backbone.pooling = pooling
        together = backbone.encode(**batch, prompt=prompt, prompt_mask=mask)
        for row, real in ((0, 3), (1, 5)):
            n = int(batch["attention_mask"][row].sum())
            alone = {k: v[row:row + 1, :n] for k, v in batch.items()}
            reference = backbone.encode(**alone, prompt=prompt[row:row + 1, :real])
            torch.testing.assert_close(together[row], reference[0], atol=1e-5, rtol=1e-4)


def test_last_pooling_finds_the_last_real_token_behind_internal_padding():
    from ltune.backbone.encoding import last_real_position

    mask = torch.tensor([[1, 1, 0, 0, 1, 1, 0], [1, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]])
    assert last_real_position(mask).tolist() == [5, 0, 6]


def test_falcon_40b_layout_prefix_has_every_attention_head():
    """Falcon's new decoder architecture caches keys/values expanded to all attention heads up to
    transformers 5.24, and its 2 key/value groups from 5.25 (found by test-newest): the prefix has the
    cache's layout under either, and the model reads it."""
    from transformers import AutoModel, FalconConfig
    from transformers.models.falcon import modeling_falcon

    from tests.tiny import HEADS, HIDDEN, LAYERS, tokenizer

    config = FalconConfig(vocab_size=tokenizer().vocab_size, hidden_size=HIDDEN, num_attention_heads=HEADS,
                          num_hidden_layers=LAYERS, new_decoder_architecture=True, num_kv_heads=2, alibi=False)
    backbone = Backbone(AutoModel.from_config(config).eval(), tokenizer(), pooling="last")
    assert backbone.num_kv_heads == (2 if hasattr(modeling_falcon, "repeat_kv") else HEADS)
    batch = batch_of(backbone, ["a sentence about nothing"])
    prefixed = backbone.hidden_states(**batch, prefix_kv=random_prefix(backbone, 1))[0]
    assert (prefixed - backbone.hidden_states(**batch)[0]).abs().max() > 1e-3


def test_the_prefix_reaches_the_model_under_this_transformers_version():
    """A prefix cache the model ignores would train nothing without a word (transformers < 5.24
    takes past_key_values, not cache): the argument name is read from the forward signature."""
    from ltune.backbone.encoding import cache_argument

    for family in FAMILIES:
        backbone = tiny_backbone(family)
        if backbone.arch.prefix_entry == "cache":
            assert cache_argument(type(backbone.model)) in ("cache", "past_key_values")


def fake_gguf_source(tmp_path, monkeypatch):
    """A folder with a .gguf file whose 'conversion' gives a tiny BERT (no real GGUF read)."""
    from ltune.backbone import loading
    from tests.tiny import tokenizer

    source = tmp_path / "weights"
    source.mkdir()
    (source / "model.gguf").write_bytes(b"GGUF")
    monkeypatch.setenv("LTUNE_CACHE_DIR", str(tmp_path / "cache"))
    words, model = tokenizer(), tiny_backbone("bert").model
    monkeypatch.setattr(loading.AutoTokenizer, "from_pretrained", lambda *a, **k: words)
    monkeypatch.setattr(loading.AutoModel, "from_pretrained", lambda *a, **k: model)
    return loading, source


def test_a_gguf_conversion_that_another_job_finished_first_uses_that_copy(tmp_path, monkeypatch, capsys):
    """Two sweep jobs side by side convert the same GGUF file; the one that finishes second finds
    the cache folder taken. It loads the winner's copy and leaves no scratch folder behind (it used
    to fall back to the GGUF file, converting it once more, and keep ~0.5 GB of scratch)."""
    loading, source = fake_gguf_source(tmp_path, monkeypatch)
    real_replace = os.replace

    def other_job_wins(scratch, target):
        shutil.copytree(scratch, target)  # the other job's copy lands first
        real_replace(scratch, target)  # raises: the target is a non-empty folder

    monkeypatch.setattr(loading.os, "replace", other_job_wins)
    folder, converted = loading.gguf_as_safetensors(source, "model.gguf")
    assert converted and (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no scratch folder left
    assert "cannot cache" not in capsys.readouterr().out


def test_a_cache_that_cannot_be_written_loads_the_gguf_file_and_leaves_no_scratch(tmp_path, monkeypatch, capsys):
    loading, source = fake_gguf_source(tmp_path, monkeypatch)

    def full_disk(scratch, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(loading.os, "replace", full_disk)
    assert loading.gguf_as_safetensors(source, "model.gguf") == (source, False)
    assert list((tmp_path / "cache" / "gguf").iterdir()) == []
    assert "ltune: cannot cache the converted GGUF weights" in capsys.readouterr().out


def test_a_decoder_pair_too_long_keeps_its_hypothesis():
    """RTE on a decoder: premise and hypothesis are joined on two lines. A long premise used to push
    the whole hypothesis past max_length, where truncation cut it: the model then classified
    entailment without seeing what is entailed. Now the longer text loses its tail first, as an
    encoder's pair does, and a pair that fits is tokenised as before."""
    backbone = tiny_backbone("llama", max_length=16)
    premise = "the committee met on monday to discuss the annual budget and the new building plans for the town"
    hypothesis = "the committee met"
    (ids,) = backbone.tokenize([premise], [hypothesis])["input_ids"]
    words = backbone.tokenizer
    hypothesis_ids = words(hypothesis, add_special_tokens=False)["input_ids"]
    assert len(ids) == 16
    assert ids[-1 - len(hypothesis_ids):-1] == hypothesis_ids and ids[-1] == words.sep_token_id
    assert ids[:4] == words(premise)["input_ids"][:4]  # the premise's start is kept, its tail cut

    short = backbone.tokenize(["it rained"], ["it was wet"])["input_ids"][0]
    assert short == words("it rained\nit was wet")["input_ids"]

    roomy = tiny_backbone("llama", max_length=48)
    (ids,) = roomy.tokenize([premise], ["the " * 40])["input_ids"]  # the hypothesis is the longer text now
    assert len(ids) == 48 and ids[:len(words(premise)["input_ids"]) - 1] == words(premise)["input_ids"][:-1]


def test_every_model_config_is_valid_and_names_a_hub_id_or_package():
    """Each conf/model yaml (one per family, issue 24) passes the schema; a pooling fits its family."""
    from pathlib import Path

    from omegaconf import OmegaConf

    from ltune.config.schema import ModelConfig

    folder = Path(__file__).resolve().parents[2] / "ltune" / "conf" / "model"
    names = sorted(p.stem for p in folder.glob("*.yaml"))
    for name in ("llama3", "qwen3", "qwen3_moe", "gemma2", "gemma3", "phi3", "olmo2", "smollm3", "mixtral", "pythia",
                 "modernbert", "electra", "distilbert"):
        assert name in names
    for name in names:
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig),
                                                  OmegaConf.load(folder / f"{name}.yaml")))
        assert cfg.name == name and (cfg.path or cfg.package)


@pytest.mark.parametrize("family", [f for f in ALL_FAMILIES if tiny_backbone(f).is_decoder])
def test_a_decoder_builds_no_key_value_cache_that_nothing_reads(family):
    """Without a prefix (prompt methods, LoRA, label encoding) a decoder's forward must not fill a
    key/value cache: transformers builds one by default (use_cache=True in the config)."""
    backbone = tiny_backbone(family)
    outputs = []
    handle = backbone.model.register_forward_hook(lambda module, args, output: outputs.append(output))
    try:
        batch = batch_of(backbone, ["a sentence about nothing", "short"])
        backbone.hidden_states(**batch)
        backbone.encode_label_batch(backbone.label_batch(["positive", "negative"], 4))
    finally:
        handle.remove()
    assert backbone.model.config.use_cache  # the default that would build one
    assert len(outputs) == 2
    assert all(output.past_key_values is None for output in outputs)

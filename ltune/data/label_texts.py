"""The label texts the L-methods encode, by ``data.label_text_kind`` (does the label's meaning matter?).

- ``configured``: ``data.label_texts`` as given.
- ``permuted``: the same texts on the wrong classes: class i takes the text of class i + 1 (the
  last class takes the first's), a rotation by one, so no class keeps its own text (a derangement).
- ``meaningless``: for each class, neutral words (numbers, colours, shapes, household objects:
  ``NEUTRAL_WORDS``) with as many tokens under the run's tokenizer as the class's configured text.
  None is a word of a shipped label text. Only words that are one token both at the start of a text and after a space are used (a BPE
  tokenizer such as Llama's or GPT's gives the two different tokens); word j of class i is the
  (j * K + i)-th of those, so the texts differ between classes from their first word on.

- ``label_first``: each configured text with the words that set it apart in front (those after the
  longest start it shares with another text: "negative: the sentiment of this review is negative"): a causal (decoder-only) model gives the
  texts' shared first words the same states for every label, so with the configured texts only the
  last position tells the labels apart; with the label first, every position does. Texts that already
  differ at their first word are kept as they are.

Non-L methods have a head per label and read no label text: the kind changes nothing for them.
"""

from __future__ import annotations

from ltune.errors import LtuneError

KINDS = ("configured", "permuted", "meaningless", "label_first")

#: Words without a label's meaning for the shipped tasks (sentiment, topics, inference), in a fixed order.
NEUTRAL_WORDS = (
    "one", "eleven", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "red", "blue", "green", "yellow", "brown", "grey", "square", "circle", "line", "point",
    "chair", "door", "wall", "box", "shelf", "paper", "stone", "page", "letter", "corner",
)


def token_count(tokenizer, text: str) -> int:
    """Tokens of a label text as the L-methods encode it (no special tokens)."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def permuted(texts: list[str]) -> list[str]:
    """Rotate by one: class i gets the configured text of class (i + 1) mod K."""
    return [texts[(i + 1) % len(texts)] for i in range(len(texts))]


def meaningless(texts: list[str], tokenizer) -> list[str]:
    """Neutral-word texts, one per class, each of the same token length as the class's configured text."""
    words = [w for w in NEUTRAL_WORDS if token_count(tokenizer, w) == 1 and token_count(tokenizer, f"{w} {w}") == 2]
    k = len(texts)
    if len(words) < k:
        raise LtuneError(f"data.label_text_kind=meaningless needs {k} words that are one token each, but this "
                         f"tokenizer has {len(words)} of ltune's neutral words; use label_text_kind=configured or "
                         f"permuted with this model")
    out = []
    for i, text in enumerate(texts):
        length = token_count(tokenizer, text)
        made = " ".join(words[(j * k + i) % len(words)] for j in range(length))
        if token_count(tokenizer, made) != length:  # a tokenizer that merges across spaces
            raise LtuneError(f"data.label_text_kind=meaningless could not build a text of {length} tokens for "
                             f"label text '{text}' with this tokenizer; use label_text_kind=configured or permuted")
        out.append(made)
    return out


def shared_start(texts: list[str]) -> list[str]:
    """The words every text starts with (split on spaces)."""
    words = [t.split() for t in texts]
    shared = []
    for column in zip(*words):
        if len(set(column)) > 1:
            break
        shared.append(column[0])
    return shared


def label_first(texts: list[str]) -> list[str]:
    """Each text with its own words in front, then the text itself: the words after the longest start it
    shares with any other text ('negative: the sentiment of this review is negative'); unchanged when it
    shares no start with another text."""
    words = [t.split() for t in texts]

    def common(a, b):
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n

    out = []
    for i, (text, own) in enumerate(zip(texts, words)):
        shared = max((common(own, other) for j, other in enumerate(words) if j != i), default=0)
        front = " ".join(own[shared:])
        out.append(f"{front}: {text}" if shared and front else text)
    return out


def shared_first_tokens(label_ids, label_mask) -> int:
    """How many first token positions every label text has in common (the same token id)."""
    shared = 0
    for column in range(label_ids.shape[1]):
        ids = label_ids[:, column][label_mask[:, column].bool()]
        if len(ids) < label_ids.shape[0] or len(set(ids.tolist())) > 1:
            break
        shared += 1
    return shared


def label_texts_of(data_cfg, tokenizer) -> list[str]:
    """The label texts a run encodes: ``data.label_texts`` turned by ``data.label_text_kind``
    (a config without the key, e.g. an older run's, is ``configured``)."""
    texts = [str(t) for t in data_cfg.label_texts]
    kind = str(data_cfg.get("label_text_kind", "configured") or "configured")
    if kind == "permuted":
        return permuted(texts)
    if kind == "meaningless":
        return meaningless(texts, tokenizer)
    if kind == "label_first":
        return label_first(texts)
    if kind != "configured":
        raise LtuneError(f"unknown data.label_text_kind '{kind}'; valid: {', '.join(KINDS)}")
    return texts

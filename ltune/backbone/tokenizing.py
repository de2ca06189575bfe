"""Text to token ids and padded batches, the way every ltune model reads them: right padding,
sentence pairs joined as the family expects, label texts without special tokens."""

from __future__ import annotations

import torch

from ltune.errors import LtuneError


class Tokenizing:
    """Tokenisation half of ``Backbone`` (needs ``tokenizer``, ``max_length``, ``is_decoder``,
    ``uses_token_types`` and ``pad_token_id``)."""

    def tokenize(self, texts_a: list[str], texts_b: list[str] | None = None) -> dict[str, list[list[int]]]:
        """Token ids (no padding) for texts or text pairs, truncated to ``max_length``."""
        if texts_b is not None and self.is_decoder and getattr(self.tokenizer, "is_fast", False):
            return {"input_ids": self._decoder_pairs(texts_a, texts_b)}
        if texts_b is not None and self.is_decoder:  # a slow tokenizer has no offsets: the pair's end is cut
            texts_a, texts_b = [f"{a}\n{b}" for a, b in zip(texts_a, texts_b)], None
        encoded = self.tokenizer(
            texts_a, texts_b, truncation=True, max_length=self.max_length, return_token_type_ids=self.uses_token_types
        )
        out = {"input_ids": encoded["input_ids"]}
        if self.uses_token_types:
            out["token_type_ids"] = encoded["token_type_ids"]
        return out

    def _decoder_pairs(self, texts_a: list[str], texts_b: list[str]) -> list[list[int]]:
        """Decoder tokenizers join pairs without a separator: each text goes on its own line. A pair
        longer than max_length loses tokens as an encoder's pair does (longest first: the tail of
        whichever text is longer), never simply its end, which would cut the hypothesis of a long
        premise away entirely."""
        joined = [f"{a}\n{b}" for a, b in zip(texts_a, texts_b)]
        encoded = self.tokenizer(joined, return_offsets_mapping=True, return_special_tokens_mask=True)
        out = []
        for a, ids, offsets, special in zip(texts_a, encoded["input_ids"], encoded["offset_mapping"],
                                            encoded["special_tokens_mask"]):
            excess = len(ids) - self.max_length
            if excess > 0:
                # The line break (at len(a)) and special tokens stay; tokens starting before it are the
                # first text's, after it the second's.
                first = [i for i, ((start, _), s) in enumerate(zip(offsets, special)) if not s and start < len(a)]
                second = [i for i, ((start, _), s) in enumerate(zip(offsets, special)) if not s and start > len(a)]
                dropped = set()
                for _ in range(excess):
                    side = first if len(first) >= len(second) else second
                    if not side:
                        break
                    dropped.add(side.pop())
                ids = [token for i, token in enumerate(ids) if i not in dropped][: self.max_length]
            out.append(list(ids))
        return out

    def pad(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        """Right-pad a list of tokenised texts into a batch."""
        length = max(len(f["input_ids"]) for f in features)
        batch = {
            "input_ids": torch.full((len(features), length), self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(features), length), dtype=torch.long),
        }
        if self.uses_token_types:
            batch["token_type_ids"] = torch.zeros((len(features), length), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            batch["input_ids"][i, :n] = torch.tensor(f["input_ids"])
            batch["attention_mask"][i, :n] = 1
            if self.uses_token_types:
                batch["token_type_ids"][i, :n] = torch.tensor(f["token_type_ids"])
        return batch

    def label_batch(self, label_texts: list[str], length: int | None = None) -> dict[str, torch.Tensor]:
        """Label texts tokenised without special tokens, right-padded (or cut) to one length l."""
        ids = self.tokenizer(list(label_texts), add_special_tokens=False)["input_ids"]
        if any(len(i) == 0 for i in ids):
            raise LtuneError("a label text tokenises to nothing; give every label a non-empty label text")
        unknown = getattr(self.tokenizer, "unk_token_id", None)
        blind = [text for text, i in zip(label_texts, ids) if unknown is not None and all(t == unknown for t in i)]
        if blind:
            raise LtuneError(f"label text(s) {blind} are unknown tokens only for this model's tokenizer "
                             f"({self.tokenizer.unk_token}), so every such label reads the same; give label texts in "
                             f"words its vocabulary has (data.label_texts)")
        length = length or max(len(i) for i in ids)
        input_ids = torch.full((len(ids), length), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids), length), dtype=torch.long)
        for row, token_ids in enumerate(ids):
            token_ids = token_ids[:length]
            input_ids[row, : len(token_ids)] = torch.tensor(token_ids)
            mask[row, : len(token_ids)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}

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
        if texts_b is not None and self.is_decoder:
            # Decoder tokenizers join pairs without a separator: put each text on its own line.
            texts_a, texts_b = [f"{a}\n{b}" for a, b in zip(texts_a, texts_b)], None
        encoded = self.tokenizer(
            texts_a, texts_b, truncation=True, max_length=self.max_length, return_token_type_ids=self.uses_token_types
        )
        out = {"input_ids": encoded["input_ids"]}
        if self.uses_token_types:
            out["token_type_ids"] = encoded["token_type_ids"]
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
        length = length or max(len(i) for i in ids)
        input_ids = torch.full((len(ids), length), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids), length), dtype=torch.long)
        for row, token_ids in enumerate(ids):
            token_ids = token_ids[:length]
            input_ids[row, : len(token_ids)] = torch.tensor(token_ids)
            mask[row, : len(token_ids)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}

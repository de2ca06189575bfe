"""``Backbone``: a frozen pretrained model plus what it takes to feed and read it.

Texts are right-padded. A prompt (input embeddings) goes in front of the text; a prefix
(per-layer keys/values) enters every layer's attention. Both may have padded positions (label
texts of different lengths padded to one length l): such positions are invisible and take no
position, so a label's score never depends on how long the other labels are.
"""

from __future__ import annotations

import contextlib
import functools
import inspect

import torch
import transformers
from torch import nn
from transformers import DynamicCache, PreTrainedModel

from ltune.backbone import attention_prefix, deberta_prefix
from ltune.backbone.architectures import architecture_of, kv_layout, sliding_layer_types
from ltune.backbone.tokenizing import Tokenizing
from ltune.errors import LtuneError

POOLINGS = ("pooler", "cls", "mean", "last")


class Backbone(Tokenizing, nn.Module):
    """``encode`` runs the model on (optionally) a prefix of per-layer keys/values and/or input
    embeddings in front of the text; ``pool`` reads one vector per text."""

    def __init__(self, model: PreTrainedModel, tokenizer, pooling: str, max_length: int = 128, placed: bool = False):
        super().__init__()
        #: True when from_pretrained already put the weights on devices (device_map / quantisation):
        #: the trainer then moves only the method's own parameters.
        self.placed = placed
        self.arch = architecture_of(model.config)
        if pooling not in POOLINGS:
            raise LtuneError(f"unknown pooling '{pooling}'; valid: {', '.join(POOLINGS)}")
        if pooling == "pooler" and getattr(model, "pooler", None) is None:
            raise LtuneError(
                f"model.pooling=pooler but this {model.config.model_type} checkpoint has no pooler; use cls or mean"
            )
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise LtuneError(f"model.max_length must be a positive number of tokens, got {max_length!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_length = max_length
        self.num_layers, self.num_kv_heads, self.head_dim = kv_layout(model.config)
        self.hidden_size = model.config.hidden_size
        self.positions = self.arch.position_kind(model.config)
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token is None:
                raise LtuneError("the tokenizer has neither a pad nor an eos token; set one in the model folder")
            tokenizer.pad_token = tokenizer.eos_token  # decoders: pad with eos; pooling never reads pads
        self.pad_token_id = tokenizer.pad_token_id
        self.uses_token_types = (getattr(model.config, "type_vocab_size", 0) or 0) > 1
        model.requires_grad_(False)
        require_eager_for_softcapping(model, self.arch)
        if self.arch.prefix_entry == "deberta":
            deberta_prefix.install(model)

    # -- facts -----------------------------------------------------------------
    @property
    def is_decoder(self) -> bool:
        return self.arch.decoder

    @property
    def embedding_width(self) -> int:
        """Width of the input embeddings a prompt stands in for (ELECTRA-small: 128, below d=256)."""
        return self.model.get_input_embeddings().embedding_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def position_limit(self) -> int | None:
        """How many positions (virtual + text) the model can take, or None if unbounded."""
        return self.arch.position_limit(self.model.config)

    def check_fits(self, virtual_tokens: int) -> None:
        limit = self.position_limit()
        if limit is not None and self.max_length + virtual_tokens > limit:
            raise LtuneError(
                f"model.max_length={self.max_length} plus {virtual_tokens} prefix/prompt positions exceeds the "
                f"model's {limit} positions; lower model.max_length to at most {limit - virtual_tokens}"
            )

    # -- running the model -----------------------------------------------------
    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Word embeddings from the frozen table (no positions)."""
        return self.model.get_input_embeddings()(input_ids)

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        prompt: torch.Tensor | None = None,
        prompt_mask: torch.Tensor | None = None,
        prefix_kv: torch.Tensor | None = None,
        prefix_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One pooled vector per text (float32, (batch, hidden)), read as the model config says.

        prompt: (batch, P, hidden) embeddings placed in front of the text's word embeddings;
        the pooled vector then reads the whole input (prompt + text) as it would any input.
        prefix_kv: (layers, 2, batch, kv heads, P, head dim) past keys/values in every layer.
        The masks (batch, P) say which prompt/prefix positions are real (1) or padding (0).
        """
        hidden, mask, text_start = self.hidden_states(
            input_ids, attention_mask, token_type_ids, prompt, prompt_mask, prefix_kv, prefix_mask
        )
        return self.pool(hidden, mask, text_start)

    def hidden_states(
        self, input_ids, attention_mask, token_type_ids=None, prompt=None, prompt_mask=None, prefix_kv=None,
        prefix_mask=None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Last hidden states of the input (prompt + text), its mask (1 = real position), and
        where each row's text starts (batch,). Real positions always come first in a row."""
        kwargs = {}
        if self.uses_token_types and token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        mask = attention_mask
        text_start = attention_mask.new_zeros(attention_mask.shape[0])
        if prompt is not None:
            if prompt_mask is None:
                prompt_mask = attention_mask.new_ones(prompt.shape[:2])
            embeds, mask, types = join_prompt(prompt, prompt_mask, self.embed(input_ids), attention_mask,
                                              kwargs.get("token_type_ids"))
            kwargs["inputs_embeds"] = embeds
            if types is not None:
                kwargs["token_type_ids"] = types
            text_start = prompt_mask.sum(1)
        else:
            kwargs["input_ids"] = input_ids

        if prefix_kv is None:
            hidden = self.model(attention_mask=mask, **self._no_cache(kwargs)).last_hidden_state
            return hidden, mask, text_start
        prefix_kv = prefix_kv.to(self.dtype)
        if prefix_mask is None:
            prefix_mask = attention_mask.new_ones(prefix_kv.shape[2], prefix_kv.shape[4])
        if self.arch.prefix_entry == "deberta":
            with deberta_prefix.prefix(self.model, prefix_kv, prefix_mask):
                hidden = self.model(attention_mask=mask, **kwargs).last_hidden_state
            return hidden, mask, text_start
        if self.arch.prefix_entry == "attention":
            attention_prefix.install(self.model, self.arch.attention_module)
            with attention_prefix.prefix(self.model, prefix_kv, prefix_mask):
                hidden = self.model(attention_mask=mask, **kwargs).last_hidden_state
            return hidden, mask, text_start
        return self._through_cache(kwargs, mask, prefix_kv, prefix_mask), mask, text_start

    def _through_cache(self, kwargs: dict, mask, prefix_kv, prefix_mask) -> torch.Tensor:
        """The text's last hidden states with the prefix as every layer's past keys/values."""
        # A fresh cache every forward pass: the model extends it in place. No config: a config with
        # sliding-window layers makes a cache that keeps only the window's last positions of the prefix.
        cache = DynamicCache([(kv[0], kv[1]) for kv in prefix_kv])
        full_mask = torch.cat([prefix_mask.to(mask.dtype), mask], dim=1)
        if self.positions == "ids":
            # The text follows the prefix's real positions only: a label padded from 3 to 5
            # positions must place the text where an unpadded 3-position prefix would.
            first = self.arch.first_position(self.model.config) + prefix_mask.sum(1, keepdim=True)
            kwargs["position_ids"] = first + torch.arange(mask.shape[1], device=mask.device)
        attention_mask = full_mask
        if self._window_can_hide_prefix(prefix_kv.shape[4]):
            attention_mask = self._window_masks(full_mask, cache, prefix_kv.shape[4], kwargs)
        kwargs[cache_argument(type(self.model))] = cache
        hidden = self.model(attention_mask=attention_mask, use_cache=True, **kwargs).last_hidden_state
        if cache.get_seq_length() != prefix_kv.shape[4] + mask.shape[1]:
            raise LtuneError(f"{type(self.model).__name__} did not read the prefix cache (transformers "
                             f"{transformers.__version__}); prefix methods cannot run on this version")
        return hidden

    def _window_can_hide_prefix(self, prefix_length: int) -> bool:
        """Whether a sliding window of this model is shorter than prefix + text can be (then ltune
        builds the masks); refused for attention kernels that apply the window themselves."""
        config = self.model.config
        if not self.arch.window_masks or not sliding_layer_types(config):
            return False
        if prefix_length + self.max_length <= config.sliding_window:
            return False
        if config._attn_implementation not in ("sdpa", "eager", "flex_attention"):
            raise LtuneError(
                f"{config._attn_implementation} applies {config.model_type}'s sliding window ({config.sliding_window}) "
                f"inside its kernel, where it would hide the prefix from text further away than the window; use "
                f"model.attn_implementation=sdpa (or eager), or model.max_length <= "
                f"{config.sliding_window - prefix_length}")
        return True

    def _window_masks(self, full_mask, cache, prefix_length: int, kwargs: dict):
        """Masks for a model with sliding-window layers, built by transformers' own mask functions
        (so in the form its attention implementation takes) with one change: every text position
        sees every real prefix position, in sliding layers too (the prefix has no place in the
        text's window: without this, text positions further than the window from the prefix
        would lose it, and a prefix longer than the window would train positions nothing reads).
        The window still applies between text positions; padded prefix positions stay hidden."""
        from transformers.masking_utils import create_causal_mask, create_sliding_window_causal_mask

        def prefix_columns(batch_idx, head_idx, q_idx, kv_idx):
            return kv_idx < prefix_length

        batch, length = full_mask.shape[0], full_mask.shape[1] - prefix_length
        shape_only = torch.empty(batch, length, 1, dtype=self.dtype, device=full_mask.device)
        common = dict(config=self.model.config, inputs_embeds=shape_only, attention_mask=full_mask,
                      position_ids=kwargs.get("position_ids"))
        common[cache_argument(create_causal_mask)] = cache
        sliding = create_sliding_window_causal_mask(**common, or_mask_function=prefix_columns)
        if self.arch.window_masks == "all_layers":
            return sliding
        return {"full_attention": create_causal_mask(**common), "sliding_attention": sliding}

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor, text_start: torch.Tensor | int = 0) -> torch.Tensor:
        """One vector per input from its hidden states (real positions first in each row), as float32.

        pooler/cls read the text's first token (after any prompt); mean averages every real
        position (prompt included, as for any input); last reads the last real position.
        """
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        if not torch.is_tensor(text_start):
            text_start = torch.full_like(rows, text_start)
        if self.pooling == "pooler":
            pooled = self.model.pooler(hidden[rows, text_start].unsqueeze(1))
        elif self.pooling == "cls":
            pooled = hidden[rows, text_start]
        elif self.pooling == "mean":
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        else:
            pooled = hidden[rows, last_real_position(mask)]
        return pooled.float()

    def text_kv(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The frozen model's own keys/values of texts read alone (eval mode, no grad), float32,
        (layers, 2, batch, kv heads, length, head dim). As a prefix they make the model read each
        text in front of its input: positions included, since the input's positions follow the
        prefix's real ones. A prefix started from them leaves the model's features as they are."""
        if self.arch.prefix_entry != "cache":
            raise LtuneError(f"a prefix started from real keys/values needs a model whose attention keeps a "
                             f"key/value cache; {self.model.config.model_type} has none: use method.init=random")
        cache = DynamicCache()  # no config: sliding-window layers keep every position
        with self.frozen_reading():
            self.model(**batch, use_cache=True, **{cache_argument(type(self.model)): cache})
        kv = torch.stack([torch.stack([layer.keys, layer.values]) for layer in cache.layers]).float()
        expected = (self.num_layers, 2, batch["input_ids"].shape[0], self.num_kv_heads, batch["input_ids"].shape[1],
                    self.head_dim)
        if tuple(kv.shape) != expected:
            raise LtuneError(f"{type(self.model).__name__} cached keys/values of shape {tuple(kv.shape)}, not "
                             f"{expected}; use method.init=random")
        return kv

    @contextlib.contextmanager
    def frozen_reading(self):
        """The model in eval mode (no dropout) without gradients, its training mode restored after."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.model.train(was_training)

    def encode_label_batch(self, label_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Last hidden states (K, l, hidden) as float32, in whatever mode and grad state the caller set."""
        return self.model(**self._no_cache(label_batch)).last_hidden_state.float()

    def _no_cache(self, kwargs: dict) -> dict:
        """A decoder's forward without a key/value cache: nothing reads one here, and transformers
        otherwise builds and fills one for every layer on each training and evaluation pass (its
        `use_cache` defaults to the config's True). Encoders take no such argument."""
        return {**kwargs, "use_cache": False} if self.is_decoder else kwargs


def require_eager_for_softcapping(model: PreTrainedModel, arch) -> None:
    """A model that caps its attention logits (Gemma-2) runs eager attention, the only implementation
    that applies the cap: transformers 5.24 picks eager itself, earlier 5.x picked sdpa and ran
    uncapped. Flash attention applies the cap itself and is kept."""
    config = model.config
    if not arch.softcap_key or getattr(config, arch.softcap_key, None) is None:
        return
    if config._attn_implementation not in ("eager", "flash_attention_2", "flash_attention_3"):
        print(f"ltune: {config.model_type} caps attention logits ({arch.softcap_key}), which "
              f"{config._attn_implementation} attention does not apply; running eager attention", flush=True)
        model.set_attn_implementation("eager")


@functools.lru_cache(maxsize=None)
def cache_argument(model_class_or_function) -> str:
    """The argument that takes past keys/values, of a model class's forward or of one of
    transformers' mask functions: ``cache`` from transformers 5.24 on, ``past_key_values`` before.
    (Passing ``cache=`` to a 5.0-5.23 model raises nothing: the model's **kwargs swallow it and the
    prefix is silently dropped.)"""
    target = getattr(model_class_or_function, "forward", model_class_or_function)
    parameters = inspect.signature(target).parameters
    for name in ("cache", "past_key_values"):
        if name in parameters:
            return name
    raise LtuneError(f"{getattr(model_class_or_function, '__name__', target)} takes neither cache nor "
                     f"past_key_values; this transformers version is not supported")


def last_real_position(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of ``mask`` (0 for a row without any), wherever padding sits."""
    positions = torch.arange(1, mask.shape[1] + 1, device=mask.device)
    return (mask.bool() * positions).argmax(1)


def join_prompt(prompt, prompt_mask, words, attention_mask, token_type_ids=None):
    """[prompt ; text] per row with every padded position moved to the end.

    A label text padded to l leaves padding between its prompt vectors and the text; packing
    each row's real prompt positions and real text tokens together gives every family the
    positions (absolute, rotary, relative) and the last token it would see without that padding.
    Returns (embeddings, mask, token type ids or None).
    """
    embeds = torch.cat([prompt.to(words.dtype), words], dim=1)
    mask = torch.cat([prompt_mask.to(attention_mask.dtype), attention_mask], dim=1)
    # A stable sort of "is padding" keeps the order of the real positions and sends padding last.
    order = torch.sort((mask == 0).to(torch.int8), dim=1, stable=True).indices
    length = int(mask.sum(1).max())
    order = order[:, :length]
    embeds = embeds.gather(1, order.unsqueeze(-1).expand(-1, -1, embeds.shape[-1]))
    packed_mask = mask.gather(1, order)
    types = None
    if token_type_ids is not None:
        types = torch.cat([token_type_ids.new_zeros(prompt.shape[:2]), token_type_ids], dim=1).gather(1, order)
    return embeds, packed_mask, types

"""Every method on every newer family (issue 24), on tiny random models built from configs.

For each family x method: training lowers the loss; a masked-out prefix or prompt gives the bare
model's output (and a visible one does not); padding does not change a score; the trainable
parameters follow the paper's formulas with kv = the family's key/value width, read from the
cache the model itself writes. Sliding windows and soft-capping have tests of their own.
"""

import itertools

import pytest
import torch

from ltune.errors import LtuneError
from ltune.methods import METHODS
from tests.methods.test_methods import make, paper_formula
from tests.tiny import LABEL_TEXTS, NEW_FAMILIES, WINDOW, method_cfg, one_thread, tiny_backbone  # noqa: F401

MATRIX = list(itertools.product(NEW_FAMILIES, METHODS))
WINDOWED = ("qwen2", "qwen3", "gemma2", "gemma3_text", "phi3", "mistral", "modernbert")  # their tiny configs have WINDOW
LONG_TEXT = "one two three four five six seven eight nine ten eleven twelve thirteen"


def batch_of(backbone, texts):
    encoded = backbone.tokenize(texts)
    return backbone.pad([{k: v[i] for k, v in encoded.items()} for i in range(len(texts))])


@pytest.mark.parametrize("family,name", MATRIX)
def test_training_lowers_the_loss(family, name):
    method, batch = make(family, name)
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=1e-2)
    method.train()  # the tiny configs have no dropout and no router noise: the loss is deterministic
    losses = []
    for _ in range(3):  # two updates, then the loss they lead to
        loss = method.training_loss(batch)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    frozen = [n for n, p in method.named_parameters() if n.startswith("backbone.") and "lora_" not in n
              and p.requires_grad]
    assert frozen == []
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0], losses


def _prefix_or_prompt(method, name, batch):
    """(keyword, mask keyword, vectors, their mask) of what the method puts in front of the text."""
    labels = batch["pair_labels"]
    size = batch["input_ids"].shape[0]
    if name == "l_prefix":
        return "prefix_kv", "prefix_mask", method.label_prefixes()[:, :, labels], method.label_mask[labels]
    if name == "prefix":
        kv = method.prefix_kv(size)
        return "prefix_kv", "prefix_mask", kv, torch.ones(size, kv.shape[4], dtype=torch.long)
    if name == "l_prompt":
        prompts = method.prompt_map(method.current_label_states())[labels]
        return "prompt", "prompt_mask", prompts, method.label_mask[labels]
    prompts = method.prompt.unsqueeze(0).expand(size, -1, -1)
    return "prompt", "prompt_mask", prompts, torch.ones(size, prompts.shape[1], dtype=torch.long)


@pytest.mark.parametrize("family,name", MATRIX)
def test_a_masked_out_prefix_or_prompt_gives_the_bare_model(family, name):
    """The bare model's pooled output is what a fully masked prefix or prompt gives; a visible
    one changes it (a family whose cache dropped the prefix would fail here, not skip)."""
    method, batch = make(family, name)
    method.eval()
    backbone = method.backbone
    text = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
    with torch.no_grad():
        if name == "peft_lora":  # B starts at zero: LoRA is the bare model until it trains
            bare = method.head(backbone.encode(**text))
            torch.testing.assert_close(method.label_scores(batch), bare, atol=1e-5, rtol=1e-4)
            for n, p in method.named_parameters():
                if ".lora_B." in n:
                    p.normal_()
            assert (method.label_scores(batch) - bare).abs().max() > 1e-4
            return
        if name == "peft_prompt":  # peft's prompt is our prompt: the prompt case covers the bare model
            ours = METHODS["prompt"].model(tiny_backbone(family), method_cfg("prompt"), LABEL_TEXTS)
            ours.prompt.copy_(method.prompt_embedding.weight)
            ours.head.load_state_dict(method.head.state_dict())
            torch.testing.assert_close(ours.eval().label_scores(batch), method.label_scores(batch),
                                       atol=1e-5, rtol=1e-4)
            return
        bare = backbone.encode(**text)
        key, mask_key, vectors, mask = _prefix_or_prompt(method, name, batch)
        masked = backbone.encode(**text, **{key: vectors, mask_key: torch.zeros_like(mask)})
        torch.testing.assert_close(masked, bare, atol=1e-5, rtol=1e-4)
        visible = backbone.encode(**text, **{key: vectors, mask_key: mask})
        assert (visible - bare).abs().max() > 1e-4


@pytest.mark.parametrize("family,name", MATRIX)
def test_padding_does_not_change_a_score(family, name):
    method, batch = make(family, name)
    method.eval()
    row = 2  # "third one": the most padding in the batch
    n = int(batch["attention_mask"][row].sum())
    assert n < batch["attention_mask"].shape[1]
    alone = {k: v[row:row + 1, :n] if v.dim() == 2 else v[row:row + 1] for k, v in batch.items()}
    with torch.no_grad():
        torch.testing.assert_close(method.label_scores(alone)[0], method.label_scores(batch)[row], atol=1e-5, rtol=1e-4)


def cache_width(backbone) -> int:
    """Key width (heads x head dim) of the cache the model itself writes; MHA width without a cache."""
    if backbone.arch.prefix_entry != "cache":
        return backbone.hidden_size
    from transformers import DynamicCache

    from ltune.backbone.encoding import cache_argument

    cache = DynamicCache()
    with torch.no_grad():
        backbone.model(input_ids=batch_of(backbone, ["a b c"])["input_ids"], use_cache=True,
                       **{cache_argument(type(backbone.model)): cache})
    keys = cache.layers[0].keys
    return keys.shape[1] * keys.shape[3]


@pytest.mark.parametrize("family,name", MATRIX)
def test_trainable_parameters_match_the_paper_formulas(family, name):
    method, _ = make(family, name)
    b = method.backbone
    assert b.kv_dim == cache_width(b)
    counted = sum(p.numel() for p in method.parameters() if p.requires_grad)
    d, e, l = b.hidden_size, b.embedding_width, method.label_length if name.startswith("l_") else None
    expected = paper_formula(name, d, b.num_layers, b.kv_dim, l, len(LABEL_TEXTS), 4)
    if name in ("l_prompt", "prompt", "peft_prompt"):  # prompt vectors are word embeddings: width e (= d but ELECTRA)
        expected = {"l_prompt": d * e + 2 * d}.get(name, 4 * e + d * 3 + 3)
    if name == "peft_lora":
        adapted = [m for n, m in b.model.named_modules() if n.rsplit(".", 1)[-1] in b.arch.lora_targets
                   and hasattr(m, "base_layer")]
        assert len(adapted) == b.num_layers * len(b.arch.lora_targets)
        expected = sum(8 * (m.in_features + m.out_features) for m in adapted) + d * 3 + 3
    assert counted == expected == method.paper_trainable_params()


# -- sliding windows and soft-capping --------------------------------------------------------

def _sliding_layers(backbone) -> list[int]:
    config = backbone.model.config
    types = getattr(config, "layer_types", None) or ["sliding_attention"] * config.num_hidden_layers
    return [i for i, t in enumerate(types) if t == "sliding_attention"]


@pytest.mark.parametrize("family", WINDOWED)
def test_a_prefix_longer_than_the_window_reaches_every_text_position(family):
    """Prefix of 6, window of 4: changing the prefix's first position in the sliding layers only
    changes every text position, the last ones too. (Through the cache of a config with sliding
    layers, that position was dropped, and windows counted from the prefix hid it from the text.)"""
    backbone = tiny_backbone(family)
    sliding = _sliding_layers(backbone)
    assert sliding and backbone.model.config.sliding_window <= WINDOW
    batch = batch_of(backbone, [LONG_TEXT])
    g = torch.Generator().manual_seed(0)
    kv = torch.randn(backbone.num_layers, 2, 1, backbone.num_kv_heads, 6, backbone.head_dim, generator=g)
    changed = kv.clone()
    changed[sliding, :, :, :, 0] += 3 * torch.randn(changed[sliding, :, :, :, 0].shape, generator=g)
    with torch.no_grad():
        a = backbone.hidden_states(**batch, prefix_kv=kv)[0][0]
        b = backbone.hidden_states(**batch, prefix_kv=changed)[0][0]
    assert a.shape[0] > 2 * WINDOW
    assert ((a - b).abs().amax(-1) > 1e-5).all(), (a - b).abs().amax(-1)


def test_the_window_still_applies_between_text_positions():
    """Phi-3 layout (every layer slides, window 4, 2 layers): with a prefix, a text position more
    than 2 x 3 positions after a changed token does not see the change."""
    backbone = tiny_backbone("phi3")
    batch = batch_of(backbone, [LONG_TEXT])
    other = {k: v.clone() for k, v in batch.items()}
    other["input_ids"][0, 1] = backbone.tokenizer.convert_tokens_to_ids("zebra")
    kv = torch.randn(backbone.num_layers, 2, 1, backbone.num_kv_heads, 6, backbone.head_dim)
    with torch.no_grad():
        a = backbone.hidden_states(**batch, prefix_kv=kv)[0][0]
        b = backbone.hidden_states(**other, prefix_kv=kv)[0][0]
    reach = 1 + backbone.num_layers * (WINDOW - 1)  # position 1 changed; each layer looks 3 back
    assert (a[1:reach + 1] - b[1:reach + 1]).abs().amax() > 1e-4
    torch.testing.assert_close(a[reach + 1:], b[reach + 1:])


def test_soft_capped_scores_stay_capped_with_a_prefix():
    """Gemma-2 caps attention logits at c (tiny model: c = 1) by c * tanh(s / c). Prefix keys
    scaled by 1000 would take all of a query's attention uncapped; capped, one key's weight stays
    below e^c / (e^c + (n - 1) e^-c) with n = 7 visible keys (6 prefix + the position itself)."""
    backbone = tiny_backbone("gemma2")
    assert backbone.model.config._attn_implementation == "eager"  # the only attention that applies the cap
    cap = backbone.model.config.attn_logit_softcapping
    batch = batch_of(backbone, ["a few words here"])
    kv = torch.randn(backbone.num_layers, 2, 1, backbone.num_kv_heads, 6, backbone.head_dim) * 1000
    weights = []
    hooks = [layer.self_attn.register_forward_hook(lambda m, i, out: weights.append(out[1]))
             for layer in backbone.model.layers]
    with torch.no_grad():
        backbone.hidden_states(**batch, prefix_kv=kv)
        capped = torch.stack([w.max() for w in weights]).max()
        weights.clear()
        for layer in backbone.model.layers:
            layer.self_attn.attn_logit_softcapping = None
        backbone.hidden_states(**batch, prefix_kv=kv)
        uncapped = torch.stack([w.max() for w in weights]).max()
    for hook in hooks:
        hook.remove()
    bound = torch.exp(torch.tensor(cap)) / (torch.exp(torch.tensor(cap)) + 6 * torch.exp(torch.tensor(-cap)))
    assert capped <= bound + 1e-6 and uncapped > 0.99


def test_a_soft_capped_model_built_with_sdpa_runs_eager_attention(capsys):
    """Bug (transformers 5.0-5.23): Gemma-2 built with sdpa ran its attention uncapped, silently.
    The backbone switches such a model to eager attention and says so."""
    from transformers import AutoModel

    from ltune.backbone import Backbone
    from tests.tiny import tiny_config, tokenizer

    model = AutoModel.from_config(tiny_config("gemma2"))  # sdpa on transformers 5.0-5.23 (test-floor)
    model.config._attn_implementation = "sdpa"  # what those versions picked (5.24 refuses sdpa here)
    backbone = Backbone(model, tokenizer(), pooling="last", max_length=16)
    assert backbone.model.config._attn_implementation == "eager"
    assert "caps attention logits (attn_logit_softcapping)" in capsys.readouterr().out


# -- encoders without a cache path -------------------------------------------------------------

@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("family", ["modernbert", "distilbert"])
def test_prefix_inside_the_attention_function(family, implementation):
    """ltune's attention function wraps sdpa (boolean masks) and eager (additive masks) alike:
    a masked prefix leaves every real position as the bare model has it; a visible one changes it."""
    backbone = tiny_backbone(family)
    backbone.model.config._attn_implementation = implementation
    batch = batch_of(backbone, ["a sentence about nothing", "short"])
    kv = torch.randn(backbone.num_layers, 2, 2, backbone.num_kv_heads, 6, backbone.head_dim)
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        bare = backbone.hidden_states(**batch)[0]
        masked = backbone.hidden_states(**batch, prefix_kv=kv, prefix_mask=torch.zeros(2, 6))[0]
        visible = backbone.hidden_states(**batch, prefix_kv=kv)[0]
        after = backbone.hidden_states(**batch)[0]
    assert backbone.model.config._attn_implementation == implementation  # ltune's function only inside the block
    torch.testing.assert_close(masked[real], bare[real], atol=1e-5, rtol=1e-4)
    assert (visible[real] - bare[real]).abs().max() > 1e-3
    torch.testing.assert_close(after, bare)  # after a prefix: the model's own attention again


@pytest.mark.parametrize("family, prefix_length, message", [
    ("modernbert", 2, "need model.attn_implementation sdpa or eager"),  # no function to join the prefix in
    ("gemma3_text", 6, "inside its kernel"),  # flash slides the window itself, past ltune's masks
])
def test_flash_attention_is_refused_where_it_would_lose_the_prefix(family, prefix_length, message):
    """One line, never a prefix hidden from the text: ModernBERT's prefix enters through the
    attention function, and flash attention applies Gemma-3's sliding window inside its kernel."""
    backbone = tiny_backbone(family)
    backbone.model.config._attn_implementation = "flash_attention_2"
    batch = batch_of(backbone, ["short"])
    kv = torch.randn(backbone.num_layers, 2, 1, backbone.num_kv_heads, prefix_length, backbone.head_dim)
    with pytest.raises(LtuneError, match=message):
        backbone.hidden_states(**batch, prefix_kv=kv)


def test_a_vocab_initialised_prompt_is_scaled_as_the_model_reads_words():
    """Gemma multiplies word embeddings by sqrt(d) on the way in: a prompt drawn from the raw table
    started sqrt(d) times too small. It is now what the model reads for those words."""
    backbone = tiny_backbone("gemma2")
    torch.manual_seed(5)
    method = METHODS["prompt"].model(backbone, method_cfg("prompt"), LABEL_TEXTS)
    torch.manual_seed(5)
    rows = torch.randint(0, backbone.model.get_input_embeddings().num_embeddings, (4,))
    torch.testing.assert_close(method.prompt.detach(), backbone.embed(rows))

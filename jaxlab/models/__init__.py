"""Complete language models built from `jaxlab.nn` layers, and the Hugging Face checkpoint plumbing they share.

`DecoderLM` is a small pre-norm decoder for experiments; `Qwen2LM` (`jaxlab.models.qwen2`) is the
transformers-exact dense Qwen2 / Qwen2.5 with its KV cache, generation and checkpoint I/O. The
MoE LMs (Mixtral, Qwen-MoE) live with the MoE layers in `jaxlab.moe.models`; the InternVL
vision-language model in `jaxlab.vlm`.
"""

from jaxlab.models import qwen2
from jaxlab.models.decoder_lm import DecoderLM, DecoderLMConfig
from jaxlab.models.qwen2 import Qwen2Config, Qwen2LM

__all__ = ["DecoderLM", "DecoderLMConfig", "Qwen2Config", "Qwen2LM", "qwen2"]

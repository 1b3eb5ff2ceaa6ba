"""Complete models built from `jaxlab.nn` layers."""

from jaxlab.models.decoder_lm import DecoderLM, DecoderLMConfig

__all__ = ["DecoderLM", "DecoderLMConfig"]

"""InternVL3 model-size presets: the released configurations as explicit numbers, and their parameter counts.

`preset(name)` gives the three component configs (vision tower, projector, language model) of a
released InternVL3 size; `parameter_count(name)` counts their parameters from the shapes that
`jax.eval_shape` gives each component's `init`, so nothing is allocated.

The numbers are those of the released Hugging Face configs (OpenGVLab/InternVL3-*): the
`vision_config`, `llm_config` and top-level fields of each `config.json`. Fields that change no
parameter shape (eps, RoPE base, token ids) are set as released where known.

Known differences from the released configs:
  - The released `llm_config`s carry `rope_scaling = {"type": "dynamic", "factor": 2.0}`.
    transformers' dynamic NTK scaling changes RoPE only for sequences longer than
    `max_position_embeddings` (32768), which `Qwen2LM` refuses, so within that limit the
    presets compute the same thing.
  - The released checkpoints are bfloat16; the presets keep `Qwen2Config`'s float32 default
    (use `dataclasses.replace(config, dtype="bfloat16")`).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxlab.models.qwen2 import Qwen2Config, Qwen2LM
from jaxlab.vlm.projector import MultiModalProjector, ProjectorConfig
from jaxlab.vlm.vision import InternVisionConfig, InternVisionModel

# InternVL3's tokenizer: Qwen2.5's 151643 words + 22 special tokens + 9 InternVL tokens (<img>,
# </img>, <IMG_CONTEXT>, <quad>, <ref>, <box> and closers) = 151674 rows. Qwen2.5 alone pads its
# table to 151936 (0.5B) / 152064 (7B, 72B); InternVL3 resized it.
INTERNVL3_VOCAB = 151674
_BOS_ID = 151643  # <|endoftext|>
_EOS_ID = 151645  # <|im_end|>, the end of a chat turn, where generation stops.

# InternViT-300M-448px-V2.5 (InternVL3-1B/2B/8B/9B/14B): LayerNorm, q/k/v bias, no qk-norm,
# 24 layers. 448 px tiles of 14 px patches: a 32 x 32 grid, 1025 positions with CLS.
_INTERNVIT_300M = InternVisionConfig(
    hidden_size=1024,
    num_hidden_layers=24,
    num_attention_heads=16,
    intermediate_size=4096,
    attention_bias=True,
    use_qk_norm=False,
    norm_type="layer_norm",
    layer_norm_eps=1e-6,
    image_size=(448, 448),
    patch_size=(14, 14),
)

# InternViT-6B-448px-V2.5 (InternVL3-38B/78B): RMSNorm, qk-norm, no q/k/v bias; 45 layers (the
# 48-layer InternViT-6B with its last three layers dropped, as in InternVL 1.5 onwards).
_INTERNVIT_6B = InternVisionConfig(
    hidden_size=3200,
    num_hidden_layers=45,
    num_attention_heads=25,
    intermediate_size=12800,
    attention_bias=False,
    use_qk_norm=True,
    norm_type="rms_norm",
    layer_norm_eps=1e-6,
    image_size=(448, 448),
    patch_size=(14, 14),
)

_QWEN_COMMON = dict(
    vocab_size=INTERNVL3_VOCAB,
    rope_theta=1_000_000.0,
    rms_norm_eps=1e-6,
    max_position_embeddings=32768,
    bos_token_id=_BOS_ID,
    eos_token_id=_EOS_ID,
)

# Qwen2.5-0.5B as InternVL3-1B ships it. Qwen2.5-0.5B itself ties its embeddings, but
# InternVL3-1B's config has tie_word_embeddings=false and its checkpoint holds a separate
# lm_head [151674, 896]; with a tied head the total would be 0.80B, not the published 0.9B.
_QWEN25_0_5B = Qwen2Config(
    hidden_size=896,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    intermediate_size=4864,
    tie_word_embeddings=False,
    **_QWEN_COMMON,
)

# Qwen2.5-7B (InternVL3-8B): untied head. From memory of the released config, not checked
# against the file here.
_QWEN25_7B = Qwen2Config(
    hidden_size=3584,
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    intermediate_size=18944,
    tie_word_embeddings=False,
    **_QWEN_COMMON,
)

# Qwen2.5-72B (InternVL3-78B): untied head. From memory of the released config, not checked
# against the file here.
_QWEN25_72B = Qwen2Config(
    hidden_size=8192,
    num_hidden_layers=80,
    num_attention_heads=64,
    num_key_value_heads=8,
    intermediate_size=29568,
    tie_word_embeddings=False,
    **_QWEN_COMMON,
)


def _projector(vision: InternVisionConfig, language: Qwen2Config) -> ProjectorConfig:
  """InternVL3's mlp1: pixel shuffle at ratio 0.5, LayerNorm(4C) -> Linear(4C, D) -> GELU -> Linear(D, D)."""
  return ProjectorConfig(
      vision_hidden_size=vision.hidden_size,
      text_hidden_size=language.hidden_size,
      downsample_ratio=0.5,
      vision_feature_layer=-1,
  )


PRESETS: dict[str, tuple[InternVisionConfig, ProjectorConfig, Qwen2Config]] = {
    # OpenGVLab/InternVL3-1B: InternViT-300M-448px-V2.5 + Qwen2.5-0.5B.
    "internvl3-1b": (_INTERNVIT_300M, _projector(_INTERNVIT_300M, _QWEN25_0_5B), _QWEN25_0_5B),
    # OpenGVLab/InternVL3-8B: InternViT-300M-448px-V2.5 + Qwen2.5-7B.
    "internvl3-8b": (_INTERNVIT_300M, _projector(_INTERNVIT_300M, _QWEN25_7B), _QWEN25_7B),
    # OpenGVLab/InternVL3-78B: InternViT-6B-448px-V2.5 + Qwen2.5-72B.
    "internvl3-78b": (_INTERNVIT_6B, _projector(_INTERNVIT_6B, _QWEN25_72B), _QWEN25_72B),
}


def preset(name: str) -> tuple[InternVisionConfig, ProjectorConfig, Qwen2Config]:
  """(vision config, projector config, language-model config) of a released InternVL3 size.

  Args:
    name: one of `PRESETS`: "internvl3-1b", "internvl3-8b", "internvl3-78b".

  Raises:
    ValueError: an unknown name (the message lists the known ones).
  """
  if not isinstance(name, str) or name not in PRESETS:
    raise ValueError(f"Unknown InternVL3 preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
  return PRESETS[name]


def _count(abstract_tree: Any) -> int:
  """Elements over all leaves of an abstract tree (logical boxes are pytree nodes around their value)."""
  return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(abstract_tree))


def component_shapes(name: str) -> dict[str, Any]:
  """{"vision", "projector", "language"}: the abstract (boxed) params of each component's `init`.

  Traced with `jax.eval_shape` on one token / one tile / one image-token row: shapes only, no
  arrays are created.
  """
  vision, projector, language = preset(name)
  key = jax.random.key(0)
  height, width = vision.image_size
  pixels = jax.ShapeDtypeStruct((1, height, width, vision.num_channels), jnp.float32)
  tokens_ntc = jax.ShapeDtypeStruct((1, 1, projector.in_features), jnp.float32)
  tokens_bt = jax.ShapeDtypeStruct((1, 1), jnp.int32)
  return {
      "vision": jax.eval_shape(InternVisionModel(vision).init, key, pixels)["params"],
      "projector": jax.eval_shape(MultiModalProjector(projector.text_hidden_size).init, key, tokens_ntc)["params"],
      "language": jax.eval_shape(Qwen2LM(language).init, key, tokens_bt)["params"],
  }


@functools.lru_cache(maxsize=None)
def _parameter_count(name: str) -> tuple[tuple[str, int], ...]:
  counts = {part: _count(tree) for part, tree in component_shapes(name).items()}
  counts["total"] = sum(counts.values())
  return tuple(counts.items())


def parameter_count(name: str) -> dict[str, int]:
  """Parameters of a preset: {"vision": ..., "projector": ..., "language": ..., "total": ...}.

  Counted from `jax.eval_shape` of each component's `init` (no allocation); cached per name.

  Raises:
    ValueError: an unknown name.
  """
  preset(name)
  return dict(_parameter_count(name))


"""Greedy or sampled generation with `InternVLModel`: the spliced prompt embeddings are built once, then
`jaxlab.models.qwen2.generate` decodes text tokens from them."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import jax

from jaxlab.models.qwen2 import generate as qwen2_generate
from jaxlab.models.qwen2.generate import check_generation
from jaxlab.models.qwen2.model import Qwen2LM, check_tokens
from jaxlab.vlm.model import InternVLModel, check_image_tokens


@functools.partial(jax.jit, static_argnames=("model",))
def _prompt_embeds(model: InternVLModel, params, input_ids_bt, pixels_nhwc):
  return model.apply({"params": params}, input_ids_bt, pixels_nhwc, method=InternVLModel.embed_inputs)


def generate(
    model: InternVLModel,
    params,
    input_ids_bt: jax.Array,
    pixels_nhwc: jax.Array | None = None,
    attention_mask_bt: jax.Array | None = None,
    *,
    max_new_tokens: int,
    method: str = "greedy",
    temperature: float = 1.0,
    top_p: float = 1.0,
    eos_id: int | Sequence[int] | None = None,
    pad_id: int = 0,
    key: jax.Array | None = None,
    positions_bt: jax.Array | None = None,
    use_cache: bool = True,
    suppress_ids: Sequence[int] = (),
) -> jax.Array:
  """Continues each left-padded prompt (text with image tokens) by `max_new_tokens` text tokens.

  Args:
    model: the `InternVLModel`.
    params: its params (or {"params": params}).
    input_ids_bt: [B, T] int prompts, LEFT padded, with one `image_token_id` per image embedding.
    pixels_nhwc: [N, H, W, 3] tiles of every image, in the order of their image tokens; None: text only.
    attention_mask_bt: [B, T], nonzero for real tokens; None: no padding.
    positions_bt: [B, T] int or float32 (V2PE) prompt positions; None: 0, 1, ... over real tokens.
    max_new_tokens, method, temperature, top_p, eos_id, pad_id, key, use_cache, suppress_ids: as
      `jaxlab.models.qwen2.generate`. The image-context token is always suppressed: fed back in a
      later prompt it would be taken for an image's place and shift every image's features.

  Returns:
    [B, max_new_tokens] int32 tokens (pad_id after a row's eos).

  Raises:
    TypeError: `model` is not an InternVLModel.
    ValueError: an image-token count that does not match the pixels (both counts named), bad pixels,
      or any input `jaxlab.models.qwen2.generate` refuses; all before decoding.
  """
  if not isinstance(model, InternVLModel):
    raise TypeError(f"model must be an InternVLModel, got {type(model).__name__}")
  if isinstance(params, Mapping) and set(params) == {"params"}:
    params = params["params"]
  check_tokens(input_ids_bt, model.config.text.vocab_size)
  # Every decoding argument is checked before the vision tower runs.
  check_generation(model.config.text, input_ids_bt.shape[1], max_new_tokens=max_new_tokens, method=method,
                   temperature=temperature, top_p=top_p, eos_id=eos_id, pad_id=pad_id, key=key)
  if pixels_nhwc is not None:
    check_image_tokens(model.config, input_ids_bt, pixels_nhwc)
  embeds_btd = _prompt_embeds(model, params, input_ids_bt, pixels_nhwc)
  language_model = Qwen2LM(model.config.text, param_dtype=model.param_dtype)
  return qwen2_generate(
      language_model, params["language_model"], None, attention_mask_bt,
      max_new_tokens=max_new_tokens, method=method, temperature=temperature, top_p=top_p, eos_id=eos_id,
      pad_id=pad_id, key=key, positions_bt=positions_bt, inputs_embeds_btd=embeds_btd, use_cache=use_cache,
      suppress_ids=(model.config.image_token_id, *suppress_ids),
  )

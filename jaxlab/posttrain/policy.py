"""One calling convention for the policies post-training trains: `logits_fn(params, batch) -> logits_btv`.

`batch` is a dict with "input_ids" [B, T] and, where the model takes them, "attention_mask"
[B, T] (nonzero for real tokens; left padding) and "pixels" [N, H, W, 3] (the tiles of every
image, in the order of their image tokens). The adapters below wrap jaxlab's causal LMs:

  vlm_logits_fn(InternVLModel)   images, left padding
  lm_logits_fn(Qwen2LM)          left padding
  moe_logits_fn(MoELM)           right padding only (the MoE decoder takes no attention mask)
"""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxlab import _compat

LogitsFn = Callable[[Any, Mapping[str, jax.Array]], jax.Array]


def vlm_logits_fn(model) -> LogitsFn:
  """Logits of an `InternVLModel` on a batch with "input_ids", optional "pixels" and "attention_mask"."""

  def logits_fn(params, batch):
    logits_btv, _ = model.apply({"params": params}, batch["input_ids"], batch.get("pixels"),
                                attention_mask_bt=batch.get("attention_mask"))
    return logits_btv

  return logits_fn


def lm_logits_fn(model) -> LogitsFn:
  """Logits of a `Qwen2LM` on a batch with "input_ids" and optional "attention_mask"."""

  def logits_fn(params, batch):
    logits_btv, _ = model.apply({"params": params}, batch["input_ids"], attention_mask_bt=batch.get("attention_mask"))
    return logits_btv

  return logits_fn


def moe_logits_fn(model) -> LogitsFn:
  """Logits of a `jaxlab.moe` decoder LM on right-padded "input_ids" (padding after the response is
  harmless under causal attention; left padding would shift positions, so it is refused when the
  batch carries an "attention_mask" that is not all ones)."""

  def logits_fn(params, batch):
    mask = batch.get("attention_mask")
    if mask is not None and not isinstance(mask, _compat.Tracer) and not bool(jnp.all(mask)):
      raise ValueError("the MoE LM takes no attention mask: pad on the right (after the response), not the left")
    logits_btv, _ = model.apply({"params": params}, batch["input_ids"])
    return logits_btv

  return logits_fn

"""The batch layout of preference pairs and the one forward that scores both sides.

A pair batch holds, for B pairs padded to T tokens:

  chosen_ids, rejected_ids       int32 [B, T]   prompt + response + EOS, right padded
  chosen_mask, rejected_mask     [B, T]         1 on the response tokens (EOS included)
  pixels (optional)              [B, K, H, W, 3] the K image tiles of each pair's prompt

Chosen and rejected rows run through the policy as one [2B, T] batch, as TRL's concatenated
forward does: one compile, and both sides see the same parameters and images.
"""

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxlab.posttrain.logprobs import sequence_logprobs
from jaxlab.posttrain.policy import LogitsFn

PAIR_KEYS = ("chosen_ids", "chosen_mask", "rejected_ids", "rejected_mask")


class PairLogprobs(NamedTuple):
  chosen_b: jax.Array  # summed response log-probs
  rejected_b: jax.Array
  chosen_token_bt: jax.Array  # per-token, masked (for the generation loss)
  chosen_mask_bt: jax.Array


def check_pair_batch(batch: Mapping[str, jax.Array]) -> None:
  """Raises ValueError naming what is missing or mis-shaped in a pair batch."""
  missing = [k for k in PAIR_KEYS if k not in batch]
  if missing:
    raise ValueError(f"a pair batch needs {PAIR_KEYS}; missing {missing}")
  shape = batch["chosen_ids"].shape
  bad = {k: batch[k].shape for k in PAIR_KEYS if batch[k].shape != shape or len(batch[k].shape) != 2}
  if bad:
    raise ValueError(f"pair arrays must all be [B, T] = {shape}; got {bad}")
  if "pixels" in batch and (batch["pixels"].ndim != 5 or batch["pixels"].shape[0] != shape[0]):
    raise ValueError(f"pixels must be [B, K, H, W, 3] with B = {shape[0]}, got {batch['pixels'].shape}")


def pair_forward(logits_fn: LogitsFn, params, batch: Mapping[str, jax.Array]) -> PairLogprobs:
  """Scores the chosen and rejected responses of a pair batch in one forward of the policy."""
  b = batch["chosen_ids"].shape[0]
  ids_bt = jnp.concatenate([batch["chosen_ids"], batch["rejected_ids"]])
  mask_bt = jnp.concatenate([batch["chosen_mask"], batch["rejected_mask"]]).astype(jnp.float32)
  inputs = {"input_ids": ids_bt}
  if "pixels" in batch:
    pixels = batch["pixels"]
    inputs["pixels"] = jnp.concatenate([pixels, pixels]).reshape(-1, *pixels.shape[2:])
  summed_b, per_token_bt = sequence_logprobs(logits_fn(params, inputs), ids_bt, mask_bt)
  return PairLogprobs(summed_b[:b], summed_b[b:], per_token_bt[:b], mask_bt[:b])

"""Dynamic symmetric activation quantization, per token or per 128 columns.

s = max|x| / (2^(b-1) - 1) over the token (group_size = -1) or over each run of 128
columns (group_size = 128); q = clip(round(x / s), -(2^(b-1) - 1), 2^(b-1) - 1). Scales are
computed at run time in float32; an all-zero group gets s = 1 so that q = 0 and nothing
divides by zero.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlab.quant.scheme import PACK_BLOCK


def _grouped(x_mk: jax.Array, group_size: int) -> jax.Array:
  """[M, G, K/G] view of the columns: G = 1 for per-token scales, K/128 for 128-groups."""
  num_rows, k = x_mk.shape
  if group_size == -1:
    return x_mk.reshape(num_rows, 1, k)
  if group_size != PACK_BLOCK:
    raise ValueError(f"activation group_size must be -1 (per token) or {PACK_BLOCK}, got {group_size}")
  if k % PACK_BLOCK:
    raise ValueError(f"per-{PACK_BLOCK} activation scales need K divisible by {PACK_BLOCK}, got K={k}")
  return x_mk.reshape(num_rows, k // PACK_BLOCK, PACK_BLOCK)


def quantize_activations(x_mk: jax.Array, bits: int, group_size: int) -> tuple[jax.Array, jax.Array]:
  """Returns (q_mk int8, scale_mg float32) with G = 1 (per token) or K/128 columns of scales."""
  if bits not in (4, 8):
    raise ValueError(f"activation bits must be 4 or 8, got {bits}")
  if x_mk.ndim != 2:
    raise ValueError(f"quantize_activations needs x of shape [M, K], got {x_mk.shape}")
  q_max = 2 ** (bits - 1) - 1
  x_mgc = _grouped(x_mk.astype(jnp.float32), group_size)
  amax_mg = jnp.max(jnp.abs(x_mgc), axis=-1)
  scale_mg = jnp.where(amax_mg > 0, amax_mg / q_max, 1.0)
  q_mgc = jnp.clip(jnp.round(x_mgc / scale_mg[..., None]), -q_max, q_max)
  return q_mgc.reshape(x_mk.shape).astype(jnp.int8), scale_mg


def dequantize_activations(q_mk: jax.Array, scale_mg: jax.Array) -> jax.Array:
  """float32 q * s, with each scale spread over its group of columns."""
  num_rows, k = q_mk.shape
  groups = scale_mg.shape[1]
  q_mgc = q_mk.astype(jnp.float32).reshape(num_rows, groups, k // groups)
  return (q_mgc * scale_mg[..., None]).reshape(num_rows, k)


def fake_quantize_activations(x_mk: jax.Array, bits: int, group_size: int) -> jax.Array:
  """float32 x rounded to the grid its scheme's quantization would put it on."""
  return dequantize_activations(*quantize_activations(x_mk, bits, group_size))

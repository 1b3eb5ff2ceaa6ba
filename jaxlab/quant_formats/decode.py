"""Decoding of stored weights: `QuantizedWeight` and `ExpertWeights` back to float arrays.

Per group of K rows (128 rows, or the whole column for per-channel schemes) with scale s and
zero z:
  asymmetric: w = q * s + z;
  symmetric:  w = qs * s, with qs = q - 2^(b-1) below 8 bits (offset binary) and qs the
    stored int8 at 8 bits.
Codes are unpacked as `jaxlab.quant_formats.packing` documents; the arithmetic is float32,
then cast, so decoding is exact for every stored value.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.quant_formats.experts import ExpertWeights
from jaxlab.quant_formats.packing import unpack_codes
from jaxlab.quant_formats.scheme import PACK_BLOCK
from jaxlab.quant_formats.weights import QuantizedWeight


def rows_by_group(x_kn: jax.Array, group_size: int) -> jax.Array:
  """[..., G, K/G, N] view of the rows: G = K/128 for 128-groups, 1 per channel (group_size -1)."""
  *lead, k, n = x_kn.shape
  groups = 1 if group_size == -1 else k // PACK_BLOCK
  return x_kn.reshape(*lead, groups, k // groups, n)


def dequantize_weight(qw: QuantizedWeight, dtype=jnp.float32) -> jax.Array:
  """[..., K, N] weights from `qw`: codes unpacked, w = q * s + z (or qs * s) in float32, then cast."""
  if not isinstance(qw, QuantizedWeight):
    raise TypeError(f"dequantize_weight needs a QuantizedWeight, got {type(qw).__name__}")
  scheme = qw.scheme
  if not scheme.quantizes_weights:
    return qw.packed.astype(dtype)
  bits = scheme.w_bits
  codes_kn = unpack_codes(qw.packed, bits, qw.in_features)
  if scheme.symmetric:
    # 8-bit codes are int8 qs already; narrower ones are offset binary.
    offset = 0 if bits == 8 else 2 ** (bits - 1)
    q_kn = codes_kn.astype(jnp.float32) - offset
  else:
    q_kn = codes_kn.astype(jnp.float32)
  q_gcn = rows_by_group(q_kn, scheme.group_size)
  w_gcn = q_gcn * qw.scale.astype(jnp.float32)[..., None, :]
  if qw.zero is not None:
    w_gcn = w_gcn + qw.zero.astype(jnp.float32)[..., None, :]
  return w_gcn.reshape(q_kn.shape).astype(dtype)


def dequantize_experts(ew: ExpertWeights, dtype=jnp.float32) -> jax.Array:
  """[E, K, N] weights of every expert, in expert order."""
  if not isinstance(ew, ExpertWeights):
    raise TypeError(f"dequantize_experts needs ExpertWeights, got {type(ew).__name__}")
  return _dequantize_experts(ew, jnp.dtype(dtype))


@functools.partial(jax.jit, static_argnums=1)
def _dequantize_experts(ew: ExpertWeights, dtype) -> jax.Array:
  stacks_skn = [dequantize_weight(stack, dtype) for stack in ew.stacks]
  if len(stacks_skn) == 1 and ew.expert_slot == tuple(range(ew.num_experts)):
    return stacks_skn[0]
  starts = np.cumsum([0] + [s.shape[0] for s in stacks_skn])
  order = np.asarray([starts[s] + slot for s, slot in zip(ew.expert_scheme, ew.expert_slot)])
  return jnp.concatenate(stacks_skn, axis=0)[order]

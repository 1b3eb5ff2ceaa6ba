"""Round-to-nearest (min-max) weight quantization, per matrix and per expert.

Per group of K rows (128 rows, or the whole column for per-channel schemes):
  asymmetric: s = (max - min) / (2^b - 1), z = min, q = clip(round((w - z) / s), 0, 2^b - 1),
    w ~ q * s + z;
  symmetric:  s = max|w| / (2^(b-1) - 1), qs = clip(round(w / s), -(2^(b-1) - 1), 2^(b-1) - 1),
    w ~ qs * s, stored as q = qs + 2^(b-1) below 8 bits and as int8 qs at 8 bits.
Scales and zeros are rounded to `scale_dtype` before the codes are computed, so dequantizing
uses exactly the stored values. A group whose scale would be 0 (all equal, asymmetric; all
zero, symmetric) gets s = 1, so nothing divides by 0 and it dequantizes to its (stored)
constant. Codes are packed as `jaxlab.quant_formats.packing` documents; the exact inverse is
`jaxlab.quant_formats.decode`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.quant_formats.decode import rows_by_group
from jaxlab.quant_formats.experts import ExpertWeights
from jaxlab.quant_formats.packing import pack_codes
from jaxlab.quant_formats.scheme import PACK_BLOCK, QuantScheme, bits_per_weight, parse_scheme
from jaxlab.quant_formats.weights import QuantizedWeight


def _check_weight(w_kn, what: str) -> None:
  if not hasattr(w_kn, "shape") or not hasattr(w_kn, "dtype"):
    raise TypeError(f"{what} needs an array, got {type(w_kn).__name__}")
  if not jnp.issubdtype(w_kn.dtype, jnp.floating):
    raise TypeError(f"{what} needs float weights, got dtype {w_kn.dtype}")


def quantize_weight(
    w_kn: jax.Array, scheme: QuantScheme | str, *, scale_dtype=jnp.float16
) -> QuantizedWeight:
  """RTN min-max quantization of `w_kn` [..., K, N] (leading axes, e.g. experts, allowed).

  The bf16 scheme keeps `w_kn` as it is (dtype included) with no scale or zero. Quantized
  schemes need K divisible by 128. Jittable: no Python control flow on values.

  Raises:
    TypeError: `w_kn` is not a float array, or `scale_dtype` is not a float dtype.
    ValueError: `w_kn` has fewer than 2 axes, K is not a multiple of 128, or the scheme is unknown.
  """
  scheme = parse_scheme(scheme)
  _check_weight(w_kn, "quantize_weight")
  if w_kn.ndim < 2:
    raise ValueError(f"quantize_weight needs w of shape [..., K, N], got shape {w_kn.shape}")
  k, n = w_kn.shape[-2:]
  if not scheme.quantizes_weights:
    return QuantizedWeight(packed=w_kn, scale=None, zero=None, scheme=scheme, in_features=k, out_features=n)
  if not jnp.issubdtype(jnp.dtype(scale_dtype), jnp.floating):
    raise TypeError(f"scale_dtype must be a float dtype, got {scale_dtype}")
  if k % PACK_BLOCK:
    raise ValueError(f"scheme {scheme.name} needs K divisible by {PACK_BLOCK}, got K={k}")

  bits = scheme.w_bits
  w_gcn = rows_by_group(w_kn.astype(jnp.float32), scheme.group_size)
  if scheme.symmetric:
    q_max = 2 ** (bits - 1) - 1
    amax_gn = jnp.max(jnp.abs(w_gcn), axis=-2)
    scale_gn = (amax_gn / q_max).astype(scale_dtype)
    # A zero scale (all-zero group, or a range below scale_dtype's resolution) would divide by 0.
    scale_gn = jnp.where(scale_gn == 0, jnp.ones_like(scale_gn), scale_gn)
    qs_gcn = jnp.clip(jnp.round(w_gcn / scale_gn.astype(jnp.float32)[..., None, :]), -q_max, q_max)
    qs_kn = qs_gcn.reshape(w_kn.shape).astype(jnp.int32)
    codes_kn = qs_kn.astype(jnp.int8) if bits == 8 else (qs_kn + 2 ** (bits - 1)).astype(jnp.uint8)
    zero_gn = None
  else:
    q_max = 2**bits - 1
    min_gn = jnp.min(w_gcn, axis=-2)
    max_gn = jnp.max(w_gcn, axis=-2)
    scale_gn = ((max_gn - min_gn) / q_max).astype(scale_dtype)
    scale_gn = jnp.where(scale_gn == 0, jnp.ones_like(scale_gn), scale_gn)
    zero_gn = min_gn.astype(scale_dtype)
    shifted_gcn = w_gcn - zero_gn.astype(jnp.float32)[..., None, :]
    q_gcn = jnp.clip(jnp.round(shifted_gcn / scale_gn.astype(jnp.float32)[..., None, :]), 0, q_max)
    codes_kn = q_gcn.reshape(w_kn.shape).astype(jnp.uint8)
  packed = pack_codes(codes_kn, bits)
  return QuantizedWeight(
      packed=packed, scale=scale_gn, zero=zero_gn, scheme=scheme, in_features=k, out_features=n
  )


def _schemes_per_expert(schemes, num_experts: int) -> tuple[QuantScheme, ...]:
  if isinstance(schemes, (str, QuantScheme)):
    return (parse_scheme(schemes),) * num_experts
  if not isinstance(schemes, Sequence):
    raise TypeError(
        f"schemes must be a scheme (name or QuantScheme) or a sequence of them, got {type(schemes).__name__}"
    )
  if len(schemes) != num_experts:
    raise ValueError(
        f"schemes has {len(schemes)} entries for {num_experts} experts; give one per expert or one for all"
    )
  return tuple(parse_scheme(s) for s in schemes)


def quantize_experts(
    w_ekn: jax.Array, schemes: QuantScheme | str | Sequence[QuantScheme | str], *, scale_dtype=jnp.float16
) -> ExpertWeights:
  """Quantizes expert e of `w_ekn` [E, K, N] with its scheme; experts sharing a scheme share a stack.

  Stacks come in order of each scheme's first expert. Experts in the bf16 scheme keep
  `w_ekn`'s dtype (the caller casts).

  Args:
    w_ekn: [E, K, N] float weights.
    schemes: one scheme (name or QuantScheme) for every expert, or a sequence of E schemes.
    scale_dtype: dtype of scales and zeros.
  """
  _check_weight(w_ekn, "quantize_experts")
  if w_ekn.ndim != 3:
    raise ValueError(f"quantize_experts needs w of shape [E, K, N], got shape {w_ekn.shape}")
  num_experts = w_ekn.shape[0]
  if num_experts == 0:
    raise ValueError("quantize_experts needs at least one expert, got E=0")
  per_expert = _schemes_per_expert(schemes, num_experts)
  return _quantize_experts(w_ekn, per_expert, jnp.dtype(scale_dtype))


# Compiled whole: each stack has its own shape, and op-by-op dispatch would compile every op
# again for every stack.
@functools.partial(jax.jit, static_argnums=(1, 2))
def _quantize_experts(w_ekn: jax.Array, per_expert: tuple[QuantScheme, ...], scale_dtype) -> ExpertWeights:
  num_experts = w_ekn.shape[0]
  distinct = list(dict.fromkeys(per_expert))
  expert_scheme = tuple(distinct.index(s) for s in per_expert)
  members = [[e for e in range(num_experts) if expert_scheme[e] == index] for index in range(len(distinct))]
  expert_slot = tuple(members[expert_scheme[e]].index(e) for e in range(num_experts))
  stacks = []
  for scheme, experts in zip(distinct, members):
    w_skn = w_ekn if len(experts) == num_experts else w_ekn[np.asarray(experts)]
    stacks.append(quantize_weight(w_skn, scheme, scale_dtype=scale_dtype))
  return ExpertWeights(tuple(stacks), expert_scheme, expert_slot)


def average_bits(ew: ExpertWeights) -> float:
  """Mean `bits_per_weight` over the experts (all experts have the same K x N)."""
  if not isinstance(ew, ExpertWeights):
    raise TypeError(f"average_bits needs ExpertWeights, got {type(ew).__name__}")
  return float(np.mean([bits_per_weight(ew.scheme_of(e)) for e in range(ew.num_experts)]))

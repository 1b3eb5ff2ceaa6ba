"""Dynamic symmetric activation quantization, per token or per 128 columns.

s = max|x| / (2^(b-1) - 1) over the token (group_size = -1) or over each run of 128
columns (group_size = 128); q = clip(round(x / s), -(2^(b-1) - 1), 2^(b-1) - 1). Scales are
computed at run time in float32; an all-zero group gets s = 1 so that q = 0 and nothing
divides by zero.

Both quotients are rounded exactly: s is the float32 nearest to max|x| / (2^(b-1) - 1), and
q is the integer nearest to the real x / s, ties to even. XLA rewrites a division by a
constant or a broadcast into a multiplication by a rounded reciprocal, which moves quotients
that sit on (or next to) a rounding boundary; so each quotient is first approximated however
the compiler likes, then settled by comparisons that involve only exact products. The
results are the same eagerly, under `jit`, and on every backend.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from jaxlab.quant_formats.scheme import PACK_BLOCK

# Low mantissa bits split off a float32 divisor: the high part keeps 16 significant bits, so
# its product with a multiplier of at most 8 significant bits (a code +- 1/2, or q_max) fits
# float32's 24 exactly, and so does the low part's (at most 9 bits) product.
_LOW_BITS = 8


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


def _split(b: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(hi, lo) with hi + lo = b exactly: hi is b with its low mantissa bits cleared."""
  bits = lax.bitcast_convert_type(b, jnp.uint32)
  hi = lax.bitcast_convert_type(bits & jnp.uint32(0xFFFFFFFF ^ ((1 << _LOW_BITS) - 1)), jnp.float32)
  return hi, b - hi  # b - hi is exact: hi is b truncated.


def _compare_parts(a: jax.Array, k: jax.Array, hi: jax.Array, lo: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(left, right) that compare as a does with k * (hi + lo), with no rounding in the answer.

  k * hi and k * lo are exact (see _LOW_BITS). a - k * hi is exact when a is within a factor
  of two of k * hi (Sterbenz); otherwise it is rounded but stays far from k * lo, which is at
  most 2^-14 of k * hi, so the comparison still comes out right.
  """
  return a - k * hi, k * lo


def _is_even_float(c: jax.Array) -> jax.Array:
  """Whether a positive float32's last mantissa bit is 0 (the tie winner)."""
  return (lax.bitcast_convert_type(c, jnp.uint32) & 1) == 0


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _nearest_float_quotient(a: jax.Array, k: int) -> jax.Array:
  """The float32 nearest to a / k (ties to even) for float32 a > 0 and an integer 1 <= k < 256."""
  k_f = jnp.float32(k)
  c = a / k  # An ulp off at most, where XLA multiplies by a rounded 1/k instead.
  for _ in range(2):  # Each step moves c by at most one ulp towards the nearest float.
    up = jnp.nextafter(c, jnp.float32(jnp.inf))
    down = jnp.nextafter(c, jnp.float32(0))
    hi, lo = _split(c)
    # a / k against the midpoints c + (up - c) / 2 and c - (c - down) / 2.
    left, right_up = _compare_parts(a, k_f, hi, lo + (up - c) / 2)
    _, right_down = _compare_parts(a, k_f, hi, lo - (c - down) / 2)
    go_up = (left > right_up) | ((left == right_up) & _is_even_float(up))
    go_down = (left < right_down) | ((left == right_down) & _is_even_float(down))
    c = jnp.where(go_up, up, jnp.where(go_down, down, c))
  return c


@_nearest_float_quotient.defjvp
def _nearest_float_quotient_jvp(k, primals, tangents):
  """d(a / k) = da / k: the corrections are piecewise constant, and bit operations have no derivative."""
  (a,), (da,) = primals, tangents
  return _nearest_float_quotient(a, k), da / k


def _nearest_integer_quotient(x: jax.Array, s: jax.Array) -> jax.Array:
  """round(x / s) of the real quotient (ties to even), for float32 s > 0 and |x / s| < 128."""
  # Rounding has derivative zero, as jnp.round does; bit operations have none at all.
  x, s = lax.stop_gradient(x), lax.stop_gradient(s)
  c = jnp.round(x / s)  # Within one of the answer, however XLA forms the quotient.
  hi, lo = _split(s)
  left_up, right_up = _compare_parts(x, c + 0.5, hi, lo)  # x against (c + 1/2) * s
  left_down, right_down = _compare_parts(x, c - 0.5, hi, lo)  # x against (c - 1/2) * s
  c_is_odd = jnp.fmod(c, 2) != 0
  go_up = (left_up > right_up) | ((left_up == right_up) & c_is_odd)
  go_down = (left_down < right_down) | ((left_down == right_down) & c_is_odd)
  return c + go_up.astype(c.dtype) - go_down.astype(c.dtype)


def quantize_activations(x_mk: jax.Array, bits: int, group_size: int) -> tuple[jax.Array, jax.Array]:
  """Returns (q_mk int8, scale_mg float32) with G = 1 (per token) or K/128 columns of scales."""
  if bits not in (4, 8):
    raise ValueError(f"activation bits must be 4 or 8, got {bits}")
  if x_mk.ndim != 2:
    raise ValueError(f"quantize_activations needs x of shape [M, K], got {x_mk.shape}")
  q_max = 2 ** (bits - 1) - 1
  x_mgc = _grouped(x_mk.astype(jnp.float32), group_size)
  amax_mg = jnp.max(jnp.abs(x_mgc), axis=-1)
  # All-zero groups divide q_max by itself: s = 1 exactly.
  scale_mg = _nearest_float_quotient(jnp.where(amax_mg > 0, amax_mg, jnp.float32(q_max)), q_max)
  q_mgc = jnp.clip(_nearest_integer_quotient(x_mgc, scale_mg[..., None]), -q_max, q_max)
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

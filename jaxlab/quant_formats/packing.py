"""Bit packing of integer weight codes along K, in blocks of 128 rows.

A weight `w_kn` has K rows (input features) and N columns (outputs); every column is packed
independently, and K must be a multiple of 128 (`PACK_BLOCK`). Codes `q` are unsigned b-bit
integers (symmetric schemes below 8 bits store the offset-binary code qs + 2^(b-1)). Within
128-row block i (K rows 128i .. 128i + 127), byte row by byte row:

* b = 8: uint8 [K, N], the codes themselves (symmetric 8-bit weights are stored as int8
  holding qs directly; `pack_codes` / `unpack_codes` pass either through unchanged).
* b = 4: uint8 [K/2, N]. Packed row 64i + r (r < 64) holds q[128i + r] in bits 0-3 and
  q[128i + 64 + r] in bits 4-7.
* b = 1: uint8 [K/8, N]. Packed row 16i + r (r < 16) holds q[128i + 16j + r] in bit j, for
  j = 0..7.
* b = 2: uint8 [K/4, N]. Packed row 32i + r (r < 32) holds q[128i + 32j + r] in bits 2j and
  2j + 1, for j = 0..3.
* b = 3: uint8 [3K/8, N], two planes stacked along rows. Rows [0, K/4) are the low two bits
  of every code in the b = 2 layout; rows [K/4, 3K/8) are the high bit: packed row
  K/4 + 16i + r (r < 16) holds bit 2 of q[128i + 16j + r] in bit j, for j = 0..7.

So a 128-row block always becomes whole packed rows: a kernel walking K one block at a time
reads 128 * b / 8 rows (for b = 3, 32 rows of the low plane and 16 of the high plane).
Leading axes (e.g. a stack of experts) are carried through untouched.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlab.quant_formats.scheme import PACK_BLOCK

PACKED_BITS = (1, 2, 3, 4, 8)


def packed_rows(in_features: int, bits: int) -> int:
  """Rows of the packed array for K = `in_features` rows of `bits`-bit codes."""
  _check_bits(bits)
  _check_in_features(in_features)
  return in_features * bits // 8


def _check_bits(bits: int) -> None:
  if bits not in PACKED_BITS:
    raise ValueError(f"bits must be one of {PACKED_BITS}, got {bits!r}")


def _check_in_features(in_features: int) -> None:
  if in_features <= 0 or in_features % PACK_BLOCK:
    raise ValueError(
        f"packed weights need K (in_features) to be a positive multiple of {PACK_BLOCK}, got K={in_features}"
    )


def _pack_fields(field_kn: jax.Array, width: int) -> jax.Array:
  """Packs `width`-bit fields (already masked) [..., K, N] into uint8 [..., K * width / 8, N].

  Each 128-row block is cut into 8 / width runs of consecutive rows; run j goes to bits
  width*j .. width*j + width - 1 of the block's packed rows.
  """
  *lead, k, n = field_kn.shape
  per_byte = 8 // width
  run = PACK_BLOCK // per_byte
  field_bjrn = field_kn.reshape(*lead, k // PACK_BLOCK, per_byte, run, n)
  packed_brn = field_bjrn[..., 0, :, :]
  for j in range(1, per_byte):
    packed_brn = packed_brn | (field_bjrn[..., j, :, :] << (width * j))
  return packed_brn.reshape(*lead, k // per_byte, n)


def _unpack_fields(packed_pn: jax.Array, width: int, in_features: int) -> jax.Array:
  """Inverse of `_pack_fields`: uint8 [..., K * width / 8, N] -> fields uint8 [..., K, N]."""
  *lead, _, n = packed_pn.shape
  per_byte = 8 // width
  run = PACK_BLOCK // per_byte
  mask = (1 << width) - 1
  packed_brn = packed_pn.reshape(*lead, in_features // PACK_BLOCK, run, n)
  fields = [(packed_brn >> (width * j)) & mask for j in range(per_byte)]
  return jnp.stack(fields, axis=-3).reshape(*lead, in_features, n)


def pack_codes(q_kn: jax.Array, bits: int) -> jax.Array:
  """Packs b-bit codes [..., K, N] into the layout of the module docstring.

  Args:
    q_kn: integer codes in [0, 2^bits - 1], K a multiple of 128. Codes are masked to their
      low `bits` bits, so an out-of-range code cannot spill into its neighbours. For
      bits = 8 the array is returned as is (uint8 codes, or int8 symmetric codes).
    bits: 1, 2, 3, 4 or 8.

  Returns:
    uint8 [..., K * bits / 8, N] (for bits = 8, `q_kn` unchanged).
  """
  _check_bits(bits)
  if not jnp.issubdtype(q_kn.dtype, jnp.integer):
    raise TypeError(f"pack_codes needs integer codes q_kn, got dtype {q_kn.dtype}")
  if q_kn.ndim < 2:
    raise ValueError(f"pack_codes needs codes of shape [..., K, N], got shape {q_kn.shape}")
  _check_in_features(q_kn.shape[-2])
  if bits == 8:
    if q_kn.dtype not in (jnp.uint8, jnp.int8):
      raise TypeError(f"8-bit codes q_kn must be uint8 (or int8 for symmetric), got {q_kn.dtype}")
    return q_kn
  q_kn = q_kn.astype(jnp.uint8) & jnp.uint8((1 << bits) - 1)
  if bits == 3:
    low_plane = _pack_fields(q_kn & jnp.uint8(3), 2)
    high_plane = _pack_fields(q_kn >> 2, 1)
    return jnp.concatenate([low_plane, high_plane], axis=-2)
  return _pack_fields(q_kn, bits)


def unpack_codes(packed: jax.Array, bits: int, in_features: int) -> jax.Array:
  """Codes uint8 [..., K, N] from `packed` [..., K * bits / 8, N]; inverse of `pack_codes`.

  For bits = 8 the array is returned as is (uint8 codes, or int8 symmetric codes).
  """
  _check_bits(bits)
  _check_in_features(in_features)
  if packed.ndim < 2:
    raise ValueError(f"unpack_codes needs packed codes of shape [..., rows, N], got shape {packed.shape}")
  rows = in_features * bits // 8
  if packed.shape[-2] != rows:
    raise ValueError(
        f"unpack_codes: {bits}-bit codes of K={in_features} rows take {rows} packed rows, "
        f"got shape {packed.shape}"
    )
  if bits == 8:
    if packed.dtype not in (jnp.uint8, jnp.int8):
      raise TypeError(f"8-bit packed codes must be uint8 (or int8 for symmetric), got {packed.dtype}")
    return packed
  if packed.dtype != jnp.uint8:
    raise TypeError(f"packed {bits}-bit codes must be uint8, got {packed.dtype}")
  if bits == 3:
    low_rows = in_features // 4
    low_kn = _unpack_fields(packed[..., :low_rows, :], 2, in_features)
    high_kn = _unpack_fields(packed[..., low_rows:, :], 1, in_features)
    return low_kn | (high_kn << 2)
  return _unpack_fields(packed, bits, in_features)

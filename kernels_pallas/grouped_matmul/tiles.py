"""Bodies of one output tile of the grouped-matmul kernel, one per kind of scheme.

Each body computes out[rows, cols] for rows [row_start, row_start + block_m) cut at
`row_end` (the group's last row) and columns [col_start, col_start + block_n) cut at N,
reading its expert's weights from a stacked ref at index `slot`. All accumulate in float32.

Quantized weights are never dequantized element by element: the codes of one 128-row block
are unpacked to small floats that equal the codes plus a constant (bf16 and f16 hold these
integers exactly; `codes_as_floats`), multiplied, and the block's scale and zero are applied
to the [block_m, block_n] partial product:
  a @ (q * s + z)  =  (a @ q) * s  +  rowsum(a) * z        (per 128-row block, per column)
where a @ q is the product with the shifted codes less the constant times rowsum(a).
Schemes that quantize activations multiply int8 codes with int8 codes into int32, then
scale by the row's activation scale and the column's weight scale. 4-bit operands are
unpacked to int8 first: the tensor cores of Hopper have no int4 instructions, so w4a4 saves
memory and bandwidth but computes at the int8 rate.

Packed layout (`jaxlab.quant_formats.packing`): in every 128-row block of K, 4-bit codes sit two per
byte (rows r and r + 64), 2-bit codes four per byte (rows r + 32j), 1-bit codes eight per
byte (rows r + 16j), and 3-bit codes as a 2-bit plane plus a 1-bit plane. So each byte plane unpacks to whole slices
of K rows and meets a contiguous slice of lhs columns: no interleaving on chip.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from jaxlab import _compat
from jaxlab.quant_formats.scheme import PACK_BLOCK, QuantScheme

plgpu = _compat.pallas_triton()


class TileAt(NamedTuple):
  """Where a program's tile lies (int32 scalars read from the schedule)."""

  slot: jax.Array
  row_start: jax.Array
  row_end: jax.Array
  col_start: jax.Array


class TileGeometry(NamedTuple):
  """Static extents: tile shape and the full problem's K (contraction) and N (outputs)."""

  block_m: int
  block_n: int
  block_k: int
  k: int
  n: int


def _row_mask(at: TileAt, geometry: TileGeometry) -> jax.Array:
  return at.row_start + jnp.arange(geometry.block_m, dtype=jnp.int32) < at.row_end


def _col_mask(at: TileAt, geometry: TileGeometry) -> jax.Array | None:
  """Columns inside N, or None when every column tile is whole (N % block_n == 0).

  Leaving out a mask Triton cannot see is constant lets it vectorise the loads and stores.
  """
  if geometry.n % geometry.block_n == 0:
    return None
  return at.col_start + jnp.arange(geometry.block_n, dtype=jnp.int32) < geometry.n


def _k_mask(k_start, geometry: TileGeometry) -> jax.Array | None:
  """Contraction rows inside K, or None when K is a multiple of block_k."""
  if geometry.k % geometry.block_k == 0:
    return None
  return k_start + jnp.arange(geometry.block_k, dtype=jnp.int32) < geometry.k


def outer_mask(rows_mask: jax.Array | None, cols_mask: jax.Array | None) -> jax.Array | None:
  """[r, c] mask from optional [r] and [c] masks (None: all true)."""
  if rows_mask is None and cols_mask is None:
    return None
  if rows_mask is None:
    return cols_mask[None, :]
  if cols_mask is None:
    return rows_mask[:, None]
  return rows_mask[:, None] & cols_mask[None, :]


def masked_load(ref, mask: jax.Array | None) -> jax.Array:
  """Load, zero-filled where `mask` is false; unmasked when `mask` is None."""
  if mask is None:
    return plgpu.load(ref)
  return plgpu.load(ref, mask=mask, other=0)


def _dot_f32(a, b):
  # float32 operands: full-precision products, not TF32, so the kernel matches the reference.
  precision = lax.Precision.HIGHEST if a.dtype == jnp.float32 else None
  return jnp.dot(a, b, preferred_element_type=jnp.float32, precision=precision)


def store_tile(out_ref, acc, at: TileAt, geometry: TileGeometry) -> None:
  mask = outer_mask(_row_mask(at, geometry), _col_mask(at, geometry))
  rows = pl.ds(at.row_start, geometry.block_m)
  cols = pl.ds(at.col_start, geometry.block_n)
  plgpu.store(out_ref.at[rows, cols], acc.astype(out_ref.dtype), mask=mask)


def dense_tile(lhs_ref, w_ref, at: TileAt, geometry: TileGeometry, *, transposed: bool) -> jax.Array:
  """[block_m, block_n] float32 of lhs @ W for float weights.

  `transposed`: w_ref is [S, N, K] read as its transpose, i.e. out = lhs @ W^T with W stored
  [K_out, N_contract]; the backward pass uses it for d_lhs = d_out @ W^T.
  """
  bm, bn, bk = geometry.block_m, geometry.block_n, geometry.block_k
  row_mask = _row_mask(at, geometry)
  col_mask = _col_mask(at, geometry)
  rows = pl.ds(at.row_start, bm)
  cols = pl.ds(at.col_start, bn)

  def step(kb, acc):
    k_mask = _k_mask(kb * bk, geometry)
    ks = pl.ds(kb * bk, bk)
    a = masked_load(lhs_ref.at[rows, ks], outer_mask(row_mask, k_mask))
    if transposed:
      w = masked_load(w_ref.at[at.slot, cols, ks], outer_mask(col_mask, k_mask))
      precision = lax.Precision.HIGHEST if a.dtype == jnp.float32 else None
      product = lax.dot_general(a, w, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32,
                                precision=precision)
    else:
      w = masked_load(w_ref.at[at.slot, ks, cols], outer_mask(k_mask, col_mask))
      product = _dot_f32(a, w)
    return acc + product

  num_k_blocks = -(-geometry.k // bk)
  return lax.fori_loop(0, num_k_blocks, step, jnp.zeros((bm, bn), jnp.float32))


def code_slices(packed_ref, at: TileAt, geometry: TileGeometry, bits: int, kb) -> Iterator[tuple[int, int, jax.Array]]:
  """(first K row within the block, number of rows, int32 codes [rows, block_n]) covering one
  128-row block `kb` of one expert's packed codes."""
  cols = pl.ds(at.col_start, geometry.block_n)
  col_mask = outer_mask(None, _col_mask(at, geometry))

  def load(first_row, num_rows):
    packed = masked_load(packed_ref.at[at.slot, pl.ds(first_row, num_rows), cols], col_mask)
    return packed.astype(jnp.int32)

  if bits == 8:
    yield 0, PACK_BLOCK, load(kb * PACK_BLOCK, PACK_BLOCK)
  elif bits == 4:
    both = load(kb * 64, 64)
    yield 0, 64, both & 0xF
    yield 64, 64, both >> 4
  elif bits == 1:
    eight = load(kb * 16, 16)
    for j in range(8):
      yield 16 * j, 16, (eight >> j) & 0x1
  elif bits == 2:
    four = load(kb * 32, 32)
    for j in range(4):
      yield 32 * j, 32, (four >> (2 * j)) & 0x3
  elif bits == 3:
    # Low two bits in the 2-bit layout (rows [0, K/4)), bit 2 in a 1-bit plane (rows [K/4, 3K/8)).
    low_halves = [load(kb * 32 + 16 * i, 16) for i in range(2)]
    high = load(geometry.k // 4 + kb * 16, 16)
    for j in range(4):
      for i in range(2):
        code = ((low_halves[i] >> (2 * j)) & 0x3) | (((high >> (2 * j + i)) & 0x1) << 2)
        yield 32 * j + 16 * i, 16, code
  else:
    raise ValueError(f"no packed layout for {bits}-bit codes")


def _code_offset(scheme: QuantScheme) -> int:
  """Symmetric codes below 8 bits are stored offset by 2^(b-1): value = code - offset."""
  return 1 << (scheme.w_bits - 1) if scheme.symmetric and scheme.w_bits < 8 else 0


def _signed(codes: jax.Array, scheme: QuantScheme) -> jax.Array:
  """Codes as signed integers: symmetric codes below 8 bits are stored offset by 2^(b-1)."""
  return codes - _code_offset(scheme) if _code_offset(scheme) else codes


def _load_group_row(ref, at: TileAt, geometry: TileGeometry, group_row) -> jax.Array:
  """[1, block_n] float32 of a scale or zero array [S, groups, N] at row `group_row`."""
  cols = pl.ds(at.col_start, geometry.block_n)
  group_row = jnp.asarray(group_row, jnp.int32)  # A Python 0 for per-channel scales.
  values = masked_load(ref.at[at.slot, group_row, cols], _col_mask(at, geometry))
  return values.astype(jnp.float32)[None, :]


class TileOptions(NamedTuple):
  """Launch-wide choices of how weight-only tiles run (`GroupedMatmulConfig`)."""

  bitcast_unpack: bool = True
  weights_first: bool = False


# float dtype -> (bit pattern of 2^p, 2^p, p): OR-ing a code c < 2^p into the mantissa of 2^p gives
# the float 2^p + c exactly, with integer ops and a bitcast instead of a conversion.
_EXPONENT_BIAS = {jnp.dtype(jnp.bfloat16): (0x4300, 128.0, 7), jnp.dtype(jnp.float16): (0x6400, 1024.0, 10)}


def exponent_bias(dtype, bits: int, bitcast: bool, signed: bool = False) -> float:
  """The constant `codes_as_floats` adds to every code (0 when it converts instead).

  Only unsigned codes (all but 8-bit symmetric ones, stored as int8) can be OR-ed in.
  """
  dtype = jnp.dtype(dtype)
  if bitcast and not signed and dtype in _EXPONENT_BIAS and bits <= _EXPONENT_BIAS[dtype][2]:
    return _EXPONENT_BIAS[dtype][1]
  return 0.0


def codes_as_floats(codes: jax.Array, dtype, bits: int, bitcast: bool, signed: bool = False) -> jax.Array:
  """`bits`-bit integer codes as floats equal to codes + exponent_bias(...), exactly.

  With `bitcast` and a 16-bit float whose mantissa holds the codes, each code is OR-ed into the
  mantissa of a power of two (two integer ops per code); otherwise converted. Integer-to-float
  conversions run at a quarter of the integer rate on recent GPUs, and decode-sized tiles spend
  their time unpacking weights.
  """
  dtype = jnp.dtype(dtype)
  if exponent_bias(dtype, bits, bitcast, signed):
    pattern = _EXPONENT_BIAS[dtype][0]
    return lax.bitcast_convert_type((codes | pattern).astype(jnp.uint16), dtype)
  return codes.astype(dtype)


def weight_only_tile(lhs_ref, packed_ref, scale_ref, zero_ref, at: TileAt, geometry: TileGeometry,
                     scheme: QuantScheme, options: TileOptions = TileOptions()) -> jax.Array:
  """[block_m, block_n] float32 of lhs @ dequantize(W) for wXa16 schemes.

  The tensor cores multiply unsigned codes shifted by a constant (`codes_as_floats`'s bias plus
  the symmetric offset); the constant's share, shift * rowsum(a), is taken off per 128-row block
  before the block's scale applies:
    a @ ((c - offset) * s + z)  =  (a @ (c + bias) - (bias + offset) * rowsum(a)) * s  +  rowsum(a) * z.
  With `options.weights_first` the tile computes out^T = W^T @ a^T, so the unpacked weights are the
  first operand of the dot (on Hopper the first operand may come from registers, the second
  only from shared memory), and is transposed once at the end.
  """
  bm, bn = geometry.block_m, geometry.block_n
  row_mask = _row_mask(at, geometry)[:, None]
  rows = pl.ds(at.row_start, bm)
  per_group = scheme.group_size == PACK_BLOCK
  first = options.weights_first
  acc_shape = (bn, bm) if first else (bm, bn)

  def product(a, w):
    if first:  # [bn, bm] = W^T a^T.
      precision = lax.Precision.HIGHEST if a.dtype == jnp.float32 else None
      return lax.dot_general(w, a, (((0,), (1,)), ((), ())), preferred_element_type=jnp.float32, precision=precision)
    return _dot_f32(a, w)

  def per_column(values_1n):  # A [1, bn] row of scales or zeros, laid out like the accumulator.
    return values_1n.reshape(bn, 1) if first else values_1n

  def per_row(values_m):  # A [bm] vector of row sums, laid out like the accumulator.
    return values_m[None, :] if first else values_m[:, None]

  # What the dot's weights exceed the signed codes by; its share is taken off per block.
  signed = jnp.issubdtype(packed_ref.dtype, jnp.signedinteger)
  bitcast = options.bitcast_unpack
  shift = exponent_bias(lhs_ref.dtype, scheme.w_bits, bitcast, signed) + _code_offset(scheme)
  needs_rowsum = bool(shift) or zero_ref is not None

  def step(kb, carry):
    acc, rowsum = carry
    part = jnp.zeros(acc_shape, jnp.float32)
    block_rowsum = jnp.zeros((bm,), jnp.float32)
    for first_row, width, codes in code_slices(packed_ref, at, geometry, scheme.w_bits, kb):
      a = plgpu.load(lhs_ref.at[rows, pl.ds(kb * PACK_BLOCK + first_row, width)], mask=row_mask, other=0)
      part = part + product(a, codes_as_floats(codes, a.dtype, scheme.w_bits, bitcast, signed))
      if needs_rowsum:
        block_rowsum = block_rowsum + jnp.sum(a.astype(jnp.float32), axis=1)
    if shift:
      part = part - shift * per_row(block_rowsum)
    if per_group:
      acc = acc + part * per_column(_load_group_row(scale_ref, at, geometry, kb))
      if zero_ref is not None:
        acc = acc + per_row(block_rowsum) * per_column(_load_group_row(zero_ref, at, geometry, kb))
      return acc, rowsum
    return acc + part, rowsum + block_rowsum

  zeros = jnp.zeros(acc_shape, jnp.float32)
  acc, rowsum = lax.fori_loop(0, geometry.k // PACK_BLOCK, step, (zeros, jnp.zeros((bm,), jnp.float32)))
  if not per_group:
    # One scale (and zero) per column: applied once, after the whole K walk.
    acc = acc * per_column(_load_group_row(scale_ref, at, geometry, 0))
    if zero_ref is not None:
      acc = acc + per_row(rowsum) * per_column(_load_group_row(zero_ref, at, geometry, 0))
  return acc.T if first else acc


def weight_activation_tile(lhs_q_ref, lhs_scale_ref, packed_ref, scale_ref, at: TileAt, geometry: TileGeometry,
                           scheme: QuantScheme) -> jax.Array:
  """[block_m, block_n] float32 for wXaY schemes: int8 x int8 -> int32 per 128-row block.

  lhs_q_ref holds the rows' int8 activation codes, lhs_scale_ref [M, K/128] their float32
  scales (per-token scales are repeated across the K/128 columns).
  """
  bm = geometry.block_m
  row_mask = _row_mask(at, geometry)
  rows = pl.ds(at.row_start, bm)
  per_group = scheme.group_size == PACK_BLOCK

  def step(kb, acc):
    part = jnp.zeros((bm, geometry.block_n), jnp.int32)
    for first, width, codes in code_slices(packed_ref, at, geometry, scheme.w_bits, kb):
      a = plgpu.load(lhs_q_ref.at[rows, pl.ds(kb * PACK_BLOCK + first, width)], mask=row_mask[:, None], other=0)
      part = part + jnp.dot(a, _signed(codes, scheme).astype(jnp.int8), preferred_element_type=jnp.int32)
    a_scale = plgpu.load(lhs_scale_ref.at[rows, kb], mask=row_mask, other=0)
    w_scale = _load_group_row(scale_ref, at, geometry, kb if per_group else 0)
    return acc + part.astype(jnp.float32) * a_scale[:, None] * w_scale

  zeros = jnp.zeros((bm, geometry.block_n), jnp.float32)
  return lax.fori_loop(0, geometry.k // PACK_BLOCK, step, zeros)


def weight_grad_tile(lhs_ref, d_out_ref, row_start, row_end, k_start, n_start, geometry: TileGeometry) -> jax.Array:
  """[block_k, block_n] float32 of lhs[rows]^T @ d_out[rows] over one expert's rows.

  Walks rows [row_start, row_end) `block_m` at a time; the trip count depends on the group
  size, so this loop has dynamic bounds (an empty group gives zeros).
  """
  bm, bn, bk = geometry.block_m, geometry.block_n, geometry.block_k
  k_mask = k_start + jnp.arange(bk, dtype=jnp.int32) < geometry.k
  n_mask = n_start + jnp.arange(bn, dtype=jnp.int32) < geometry.n

  def step(i, acc):
    first = row_start + i * bm
    row_mask = first + jnp.arange(bm, dtype=jnp.int32) < row_end
    a = plgpu.load(lhs_ref.at[pl.ds(first, bm), pl.ds(k_start, bk)], mask=row_mask[:, None] & k_mask[None, :],
                   other=0)
    g = plgpu.load(d_out_ref.at[pl.ds(first, bm), pl.ds(n_start, bn)], mask=row_mask[:, None] & n_mask[None, :],
                   other=0)
    precision = lax.Precision.HIGHEST if a.dtype == jnp.float32 else None
    return acc + lax.dot_general(a, g, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32,
                                 precision=precision)

  num_row_blocks = (row_end - row_start + bm - 1) // bm
  return lax.fori_loop(0, num_row_blocks, step, jnp.zeros((bk, bn), jnp.float32))

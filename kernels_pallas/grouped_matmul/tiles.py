"""Bodies of one output tile of the grouped-matmul kernel, one per kind of scheme.

Each body computes out[rows, cols] for rows [row_start, row_start + block_m) cut at
`row_end` (the group's last row) and columns [col_start, col_start + block_n) cut at N,
reading its expert's weights from a stacked ref at index `slot`. All accumulate in float32.

Quantized weights are never expanded to float tiles: the codes of one 128-row block are
unpacked to small integers, multiplied exactly (bf16 holds integers up to 256), and the
block's scale and zero are applied to the [block_m, block_n] partial product:
  a @ (q * s + z)  =  (a @ q) * s  +  rowsum(a) * z        (per 128-row block, per column)
Schemes that quantize activations multiply int8 codes with int8 codes into int32, then
scale by the row's activation scale and the column's weight scale. 4-bit operands are
unpacked to int8 first: the tensor cores of Hopper have no int4 instructions, so w4a4 saves
memory and bandwidth but computes at the int8 rate.

Packed layout (`jaxlab.quant.packing`): in every 128-row block of K, 4-bit codes sit two per
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
from jaxlab.quant.scheme import PACK_BLOCK, QuantScheme

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


def _signed(codes: jax.Array, scheme: QuantScheme) -> jax.Array:
  """Codes as signed integers: symmetric codes below 8 bits are stored offset by 2^(b-1)."""
  if scheme.symmetric and scheme.w_bits < 8:
    return codes - (1 << (scheme.w_bits - 1))
  return codes


def _load_group_row(ref, at: TileAt, geometry: TileGeometry, group_row) -> jax.Array:
  """[1, block_n] float32 of a scale or zero array [S, groups, N] at row `group_row`."""
  cols = pl.ds(at.col_start, geometry.block_n)
  group_row = jnp.asarray(group_row, jnp.int32)  # A Python 0 for per-channel scales.
  values = masked_load(ref.at[at.slot, group_row, cols], _col_mask(at, geometry))
  return values.astype(jnp.float32)[None, :]


def weight_only_tile(lhs_ref, packed_ref, scale_ref, zero_ref, at: TileAt, geometry: TileGeometry,
                     scheme: QuantScheme) -> jax.Array:
  """[block_m, block_n] float32 of lhs @ dequantize(W) for wXa16 schemes."""
  bm = geometry.block_m
  row_mask = _row_mask(at, geometry)[:, None]
  rows = pl.ds(at.row_start, bm)
  per_group = scheme.group_size == PACK_BLOCK

  def step(kb, carry):
    acc, rowsum = carry
    part = jnp.zeros_like(acc)
    block_rowsum = jnp.zeros((bm,), jnp.float32)
    for first, width, codes in code_slices(packed_ref, at, geometry, scheme.w_bits, kb):
      a = plgpu.load(lhs_ref.at[rows, pl.ds(kb * PACK_BLOCK + first, width)], mask=row_mask, other=0)
      part = part + _dot_f32(a, _signed(codes, scheme).astype(a.dtype))
      if zero_ref is not None:
        block_rowsum = block_rowsum + jnp.sum(a.astype(jnp.float32), axis=1)
    if per_group:
      acc = acc + part * _load_group_row(scale_ref, at, geometry, kb)
      if zero_ref is not None:
        acc = acc + block_rowsum[:, None] * _load_group_row(zero_ref, at, geometry, kb)
      return acc, rowsum
    return acc + part, rowsum + block_rowsum

  zeros = jnp.zeros((bm, geometry.block_n), jnp.float32)
  acc, rowsum = lax.fori_loop(0, geometry.k // PACK_BLOCK, step, (zeros, jnp.zeros((bm,), jnp.float32)))
  if not per_group:
    # One scale (and zero) per column: applied once, after the whole K walk.
    acc = acc * _load_group_row(scale_ref, at, geometry, 0)
    if zero_ref is not None:
      acc = acc + rowsum[:, None] * _load_group_row(zero_ref, at, geometry, 0)
  return acc


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

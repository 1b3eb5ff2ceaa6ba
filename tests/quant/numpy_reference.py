"""Plain NumPy restatements of the quantization spec, written element by element.

They follow the spec's formulas directly (one code, one packed row index, one bit position at
a time) so that the vectorized jnp code in `jaxlab.quant` and `jaxlab.quant_formats` is checked against something
written independently of it.
"""

from __future__ import annotations

import numpy as np


def pack_codes(q_kn: np.ndarray, bits: int) -> np.ndarray:
  """uint8 packed rows of codes q [K, N], placing every code by the spec's row/bit formulas."""
  k, n = q_kn.shape
  q_kn = q_kn.astype(np.int64)
  if bits == 8:
    return q_kn.astype(np.uint8)
  packed = np.zeros((k * bits // 8, n), np.int64)
  for row in range(k):
    block, t = divmod(row, 128)
    if bits == 4:
      half, r = divmod(t, 64)
      packed[64 * block + r] |= q_kn[row] << (4 * half)
    elif bits == 2:
      j, r = divmod(t, 32)
      packed[32 * block + r] |= q_kn[row] << (2 * j)
    elif bits == 1:
      j, r = divmod(t, 16)
      packed[16 * block + r] |= q_kn[row] << j
    elif bits == 3:
      j, r = divmod(t, 32)
      packed[32 * block + r] |= (q_kn[row] & 3) << (2 * j)
      j, r = divmod(t, 16)
      packed[k // 4 + 16 * block + r] |= ((q_kn[row] >> 2) & 1) << j
    else:
      raise ValueError(bits)
  assert packed.max(initial=0) < 256
  return packed.astype(np.uint8)


def quantize(w_kn: np.ndarray, bits: int, group_size: int, symmetric: bool, scale_dtype=np.float16):
  """(signed integer values q or qs [K, N], scale [G, N], zero [G, N] or None) by the spec's formulas."""
  k, n = w_kn.shape
  group = k if group_size == -1 else group_size
  w = w_kn.astype(np.float32)
  q = np.zeros((k, n), np.int64)
  scales, zeros = [], []
  for g in range(k // group):
    rows = slice(g * group, (g + 1) * group)
    block = w[rows]
    if symmetric:
      q_max = 2 ** (bits - 1) - 1
      s = (np.abs(block).max(axis=0) / np.float32(q_max)).astype(scale_dtype)
      s = np.where(s == 0, 1, s).astype(scale_dtype)
      q[rows] = np.clip(np.round(block / s.astype(np.float32)), -q_max, q_max)
    else:
      q_max = 2**bits - 1
      lo, hi = block.min(axis=0), block.max(axis=0)
      s = ((hi - lo) / np.float32(q_max)).astype(scale_dtype)
      s = np.where(s == 0, 1, s).astype(scale_dtype)
      z = lo.astype(scale_dtype)
      q[rows] = np.clip(np.round((block - z.astype(np.float32)) / s.astype(np.float32)), 0, q_max)
      zeros.append(z)
    scales.append(s)
  return q, np.stack(scales), (np.stack(zeros) if zeros else None)


def dequantize(q_kn: np.ndarray, scale_gn: np.ndarray, zero_gn: np.ndarray | None) -> np.ndarray:
  """float64 q * s (+ z), each group's scale spread over its rows."""
  groups = scale_gn.shape[0]
  rows = q_kn.shape[0] // groups
  s = np.repeat(scale_gn.astype(np.float64), rows, axis=0)
  z = 0.0 if zero_gn is None else np.repeat(zero_gn.astype(np.float64), rows, axis=0)
  return q_kn * s + z

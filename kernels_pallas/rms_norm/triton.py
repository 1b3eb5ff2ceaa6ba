"""RMSNorm forward and backward as Pallas kernels lowered through Triton (layout: README.md).

Rows are [M, D] (leading axes flattened by the caller). A tile is `block_rows` rows by
`block_cols` = next_power_of_two(D) columns; loads and stores are masked, so D and M need
not be powers of two or multiples of the block. Refs are whole arrays (no BlockSpecs): each
program addresses its tile with `pl.ds` and masks, which Triton turns into pointer
arithmetic and the interpreter into padded slices.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from jaxlab import _compat
from kernels_pallas.rms_norm.config import RmsNormBlockConfig

plgpu = _compat.pallas_triton()


def _round_to(value, dtype):
  """value rounded to `dtype` and back to float32."""
  return value.astype(dtype).astype(jnp.float32)


def _forward_kernel(
    x_ref, scale_ref, y_ref, rstd_ref, *, eps: float, rounding: str, block_rows: int, block_cols: int
):
  """One program: rows [i*block_rows, (i+1)*block_rows) -> y tile and per-row rstd."""
  num_rows, row_length = x_ref.shape
  row_start = pl.program_id(0) * block_rows
  row_mask = row_start + jnp.arange(block_rows) < num_rows
  col_mask = jnp.arange(block_cols) < row_length
  tile_mask = row_mask[:, None] & col_mask[None, :]
  tile = (pl.ds(row_start, block_rows), pl.ds(0, block_cols))

  # Padding loads as 0, so it adds nothing to the sum of squares; divide by the true D.
  x = plgpu.load(x_ref.at[tile], mask=tile_mask, other=0.0).astype(jnp.float32)
  scale = plgpu.load(scale_ref.at[pl.ds(0, block_cols)], mask=col_mask, other=0.0).astype(jnp.float32)
  rstd = lax.rsqrt(jnp.sum(x * x, axis=1) / row_length + eps)
  x_hat = x * rstd[:, None]
  if rounding == "transformers":
    # x_hat and scale rounded to y's dtype first. Their product is exact in float32 (at most
    # 2 x 11 significand bits), so rounding it once more is the multiply in y's dtype.
    y = _round_to(x_hat, y_ref.dtype) * _round_to(scale, y_ref.dtype)[None, :]
  else:
    y = x_hat * scale[None, :]
  plgpu.store(y_ref.at[tile], y.astype(y_ref.dtype), mask=tile_mask)
  plgpu.store(rstd_ref.at[pl.ds(row_start, block_rows)], rstd, mask=row_mask)


def _backward_kernel(
    x_ref, scale_ref, rstd_ref, dy_ref, dx_ref, dscale_partial_ref,
    *, rounding: str, block_rows: int, block_cols: int, blocks_per_program: int,
):
  """One program: `blocks_per_program` consecutive row blocks -> dx, plus one dscale partial row.

  With x_hat = x * rstd and g = dy * scale:
    dx = rstd * (g - x_hat * mean(g * x_hat))   (per row)
    dscale = sum over rows of dy * x_hat        (this program's rows only)
  With rounding="transformers", g, x_hat in dscale, and each dy * x_hat are rounded to x's dtype,
  where the forward's multiply in x's dtype rounds them under autodiff.
  """
  num_rows, row_length = x_ref.shape
  program = pl.program_id(0)
  col_mask = jnp.arange(block_cols) < row_length
  scale = plgpu.load(scale_ref.at[pl.ds(0, block_cols)], mask=col_mask, other=0.0).astype(jnp.float32)
  round_products = rounding == "transformers"
  if round_products:
    scale = _round_to(scale, x_ref.dtype)

  def row_block(step, dscale_acc):
    row_start = (program * blocks_per_program + step) * block_rows
    row_mask = row_start + jnp.arange(block_rows) < num_rows
    tile_mask = row_mask[:, None] & col_mask[None, :]
    tile = (pl.ds(row_start, block_rows), pl.ds(0, block_cols))
    # Rows past the end load rstd = 0, so they contribute nothing to dscale.
    x = plgpu.load(x_ref.at[tile], mask=tile_mask, other=0.0).astype(jnp.float32)
    dy = plgpu.load(dy_ref.at[tile], mask=tile_mask, other=0.0).astype(jnp.float32)
    rstd = plgpu.load(rstd_ref.at[pl.ds(row_start, block_rows)], mask=row_mask, other=0.0)
    x_hat = x * rstd[:, None]
    g = dy * scale[None, :]
    dscale_rows = dy * x_hat
    if round_products:
      g = _round_to(g, x_ref.dtype)
      dscale_rows = _round_to(dy * _round_to(x_hat, x_ref.dtype), x_ref.dtype)
    mean_g_x_hat = jnp.sum(g * x_hat, axis=1) / row_length
    dx = (g - x_hat * mean_g_x_hat[:, None]) * rstd[:, None]
    plgpu.store(dx_ref.at[tile], dx.astype(dx_ref.dtype), mask=tile_mask)
    return dscale_acc + jnp.sum(dscale_rows, axis=0)

  dscale = lax.fori_loop(0, blocks_per_program, row_block, jnp.zeros((block_cols,), jnp.float32))
  plgpu.store(
      dscale_partial_ref.at[pl.ds(program, 1), pl.ds(0, block_cols)], dscale[None, :], mask=col_mask[None, :]
  )


def _forward(x_md: jax.Array, scale_d: jax.Array, eps: float, rounding: str, config: RmsNormBlockConfig,
             interpret: bool):
  """Returns y [M, D] in x's dtype and rstd [M] in float32."""
  num_rows, row_length = x_md.shape
  block_cols = config.block_cols(row_length)
  kernel = functools.partial(
      _forward_kernel, eps=eps, rounding=rounding, block_rows=config.block_rows, block_cols=block_cols
  )
  itemsize = x_md.dtype.itemsize
  return pl.pallas_call(
      kernel,
      out_shape=(
          jax.ShapeDtypeStruct((num_rows, row_length), x_md.dtype),
          jax.ShapeDtypeStruct((num_rows,), jnp.float32),
      ),
      grid=(pl.cdiv(num_rows, config.block_rows),),
      compiler_params=_compat.triton_compiler_params(num_warps=config.num_warps, num_stages=config.num_stages),
      cost_estimate=pl.CostEstimate(
          flops=4 * num_rows * row_length,
          transcendentals=num_rows,
          bytes_accessed=2 * num_rows * row_length * itemsize + row_length * scale_d.dtype.itemsize + 4 * num_rows,
      ),
      interpret=interpret,
      name="rms_norm_forward",
  )(x_md, scale_d)


def _backward(x_md, scale_d, rstd_m, dy_md, rounding: str, config: RmsNormBlockConfig, interpret: bool):
  """Returns dx [M, D] in x's dtype and dscale [D] in scale's dtype."""
  num_rows, row_length = x_md.shape
  block_cols = config.block_cols(row_length)
  num_row_blocks = pl.cdiv(num_rows, config.block_rows)
  # Contiguous runs of row blocks per program; re-derive the count so no program is empty.
  blocks_per_program = pl.cdiv(num_row_blocks, min(num_row_blocks, config.max_backward_programs))
  num_programs = pl.cdiv(num_row_blocks, blocks_per_program)
  kernel = functools.partial(
      _backward_kernel, rounding=rounding, block_rows=config.block_rows, block_cols=block_cols,
      blocks_per_program=blocks_per_program,
  )
  itemsize = x_md.dtype.itemsize
  dx_md, dscale_partial_pd = pl.pallas_call(
      kernel,
      out_shape=(
          jax.ShapeDtypeStruct((num_rows, row_length), x_md.dtype),
          jax.ShapeDtypeStruct((num_programs, row_length), jnp.float32),
      ),
      grid=(num_programs,),
      compiler_params=_compat.triton_compiler_params(num_warps=config.num_warps, num_stages=config.num_stages),
      cost_estimate=pl.CostEstimate(
          flops=10 * num_rows * row_length,
          transcendentals=0,
          bytes_accessed=3 * num_rows * row_length * itemsize + 4 * num_rows + 4 * num_programs * row_length,
      ),
      interpret=interpret,
      name="rms_norm_backward",
  )(x_md, scale_d, rstd_m, dy_md)
  return dx_md, jnp.sum(dscale_partial_pd, axis=0).astype(scale_d.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def rms_norm_rows(x_md: jax.Array, scale_d: jax.Array, eps: float, rounding: str, config: RmsNormBlockConfig,
                  interpret: bool):
  """RMSNorm of each row of x [M, D] with gain scale [D]; y in x's dtype, rounded as `rounding` says
  ("float32" or "transformers", see `jaxlab.ops.rms_norm`)."""
  y_md, _ = _forward(x_md, scale_d, eps, rounding, config, interpret)
  return y_md


def _rms_norm_rows_fwd(x_md, scale_d, eps, rounding, config, interpret):
  y_md, rstd_m = _forward(x_md, scale_d, eps, rounding, config, interpret)
  return y_md, (x_md, scale_d, rstd_m)


def _rms_norm_rows_bwd(eps, rounding, config, interpret, residuals, dy_md):
  del eps  # Folded into the saved rstd.
  x_md, scale_d, rstd_m = residuals
  return _backward(x_md, scale_d, rstd_m, dy_md, rounding, config, interpret)


rms_norm_rows.defvjp(_rms_norm_rows_fwd, _rms_norm_rows_bwd)

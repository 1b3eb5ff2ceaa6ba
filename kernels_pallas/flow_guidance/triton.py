"""HiFlow guidance step as Pallas kernels lowered through Triton (layout: README.md).

Fourier path: the op low-passes d = x0_ref - x0_hat in XLA (FFT, mask, inverse FFT) and
passes the result in; `guided_update` does everything after that in one kernel over the
flattened latent. Haar path: `flow_guidance_dwt` is one kernel end to end; the Haar low-pass
of d is the mean of each 2x2 block, which a program forms from the four corner tiles it
loads anyway.

Scalars (sigma, sigma_next, alpha, beta) arrive as one float32 [4] array, so they may be
traced; `sigma_eps` (added to sigma before dividing) is a static float given by the op.
Whether the acceleration term runs (v_prev, v_ref_prev given) is static: each kernel has a
variant with and one without those two inputs.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from jaxlab import _compat
from kernels_pallas.flow_guidance.config import FlowGuidanceConfig

plgpu = _compat.pallas_triton()

# Positions in the scalars array.
SIGMA, SIGMA_NEXT, ALPHA, BETA = range(4)
NUM_SCALARS = 4
NUM_OUTPUTS = 4  # x_next, v_guided, v_ref, x0_unguided.
# Per element, besides the loads and stores: about 16 adds and multiplies with acceleration.
_FLOPS_PER_ELEMENT = 16


def _guide(x_t, v, x0_ref, lp, previous, scalars, sigma_eps: float):
  """The step after the low-pass, on float32 tiles; `previous` is (v_prev, v_ref_prev) or None."""
  sigma, sigma_next, alpha, beta = scalars
  x0_hat = x_t - sigma * v
  inv_sigma = 1.0 / (sigma + sigma_eps)
  v_guided = v - alpha * lp * inv_sigma  # (x_t - (x0_hat + alpha * lp)) / sigma, exact at alpha = 0.
  v_ref = (x_t - x0_ref) * inv_sigma
  if previous is not None:
    v_prev, v_ref_prev = previous
    v_guided = v_guided + beta * ((v_prev + v_ref - v_ref_prev) - v_guided)
  x_next = x_t + (sigma_next - sigma) * v_guided
  return x_next, v_guided, v_ref, x0_hat


def _read_scalars(scalars_ref):
  return tuple(scalars_ref[i] for i in range(NUM_SCALARS))


def _split_refs(refs, accelerate: bool):
  """(x_t, v, x0_ref, extra inputs..., previous pair or None, outputs) from the flat ref list."""
  num_inputs = len(refs) - NUM_OUTPUTS
  inputs, outputs = refs[:num_inputs], refs[num_inputs:]
  previous = tuple(inputs[-2:]) if accelerate else None
  main = inputs[:-2] if accelerate else inputs
  return main, previous, outputs


def _elementwise_kernel(scalars_ref, *refs, block: int, sigma_eps: float, accelerate: bool, masked: bool):
  """One program: elements [i*block, (i+1)*block) of every flattened array -> the four outputs."""
  (x_t_ref, v_ref, x0_ref_ref, lp_ref), previous_refs, outputs = _split_refs(refs, accelerate)
  num_elements = x_t_ref.shape[0]
  # Block starts are multiples of the block: told so, Triton emits 16-byte vector accesses.
  start = pl.multiple_of(pl.program_id(0) * block, block)
  window = pl.ds(start, block)
  mask = start + jnp.arange(block, dtype=jnp.int32) < num_elements if masked else None

  def load(ref):
    return plgpu.load(ref.at[window], mask=mask, other=None if mask is None else 0.0).astype(jnp.float32)

  previous = None if previous_refs is None else tuple(load(r) for r in previous_refs)
  results = _guide(load(x_t_ref), load(v_ref), load(x0_ref_ref), load(lp_ref), previous, _read_scalars(scalars_ref),
                    sigma_eps)
  for ref, value in zip(outputs, results):
    plgpu.store(ref.at[window], value.astype(ref.dtype), mask=mask)


def _haar_kernel(scalars_ref, *refs, block_rows: int, block_w: int, block_c: int, col_blocks: int,
                 sigma_eps: float, accelerate: bool, masked: bool):
  """One program: a [block_rows, block_w] band of 2x2 blocks, all channels -> the four outputs.

  Arrays are [B*H/2, 2, W/2, 2, C] views of NHWC latents: index (r, i, j, s, c) is pixel
  (2r + i, 2j + s) of channel c (the same memory as [B*H/2, 2, W/2, 2*C] with the column half
  at offset s*C of the last axis). The corner (i, s) of every block in the band is one tile
  [block_rows, block_w, block_c].
  """
  (x_t_ref, v_ref, x0_ref_ref), previous_refs, outputs = _split_refs(refs, accelerate)
  num_rows, _, half_w, _, channels = x_t_ref.shape
  program = pl.program_id(0)
  row_start = (program // col_blocks) * block_rows
  col_start = (program % col_blocks) * block_w
  mask = None
  if masked:
    rows = row_start + jnp.arange(block_rows, dtype=jnp.int32) < num_rows
    cols = col_start + jnp.arange(block_w, dtype=jnp.int32) < half_w
    chans = jnp.arange(block_c, dtype=jnp.int32) < channels
    mask = rows[:, None, None] & cols[None, :, None] & chans[None, None, :]
  corners = ((0, 0), (0, 1), (1, 0), (1, 1))  # (row half, column half): a, b, c, d.

  def at(ref, corner):
    # 0-d int32 indices: the interpreter's discharge rules reject plain Python ints here.
    row_half, col_half = (jnp.int32(i) for i in corner)
    return ref.at[pl.ds(row_start, block_rows), row_half, pl.ds(col_start, block_w), col_half, pl.ds(0, block_c)]

  def load(ref, corner):
    return plgpu.load(at(ref, corner), mask=mask, other=None if mask is None else 0.0).astype(jnp.float32)

  scalars = _read_scalars(scalars_ref)
  sigma = scalars[SIGMA]
  x_t = [load(x_t_ref, k) for k in corners]
  v = [load(v_ref, k) for k in corners]
  x0_ref = [load(x0_ref_ref, k) for k in corners]
  diff = [r - (x - sigma * u) for x, u, r in zip(x_t, v, x0_ref)]
  # Same association as the reference's Haar pair (ll = ((a+b)+(c+d))/2, then /2 again).
  lp = 0.25 * ((diff[0] + diff[1]) + (diff[2] + diff[3]))
  for index, corner in enumerate(corners):
    previous = None if previous_refs is None else tuple(load(r, corner) for r in previous_refs)
    results = _guide(x_t[index], v[index], x0_ref[index], lp, previous, scalars, sigma_eps)
    for ref, value in zip(outputs, results):
      plgpu.store(at(ref, corner), value.astype(ref.dtype), mask=mask)


def _check_size(x_bhwc, extra: int) -> None:
  size = x_bhwc.size
  if size == 0:
    raise NotImplementedError(f"pallas_triton needs a non-empty latent, got shape {x_bhwc.shape}")
  if size + extra >= 2**31:
    raise NotImplementedError(f"pallas_triton indexes with int32; {size} elements is too many")


def _cost(num_elements: int, inputs) -> pl.CostEstimate:
  bytes_in = sum(a.size * a.dtype.itemsize for a in inputs)
  return pl.CostEstimate(
      flops=_FLOPS_PER_ELEMENT * num_elements, transcendentals=0,
      bytes_accessed=bytes_in + NUM_OUTPUTS * 4 * num_elements,
  )


def _previous(v_prev, v_ref_prev) -> tuple:
  return () if v_prev is None else (v_prev, v_ref_prev)


def guided_update(x_t, v, x0_ref, lp, v_prev, v_ref_prev, scalars_4, *, sigma_eps: float,
                  config: FlowGuidanceConfig | None, interpret: bool):
  """The fused step after the low-pass: four float32 arrays shaped like x_t.

  Args:
    x_t, v, x0_ref, lp: same-shape arrays (any rank; flattened here); lp = LP(x0_ref - x0_hat).
    v_prev, v_ref_prev: both arrays (acceleration on) or both None.
    scalars_4: float32 [4] (sigma, sigma_next, alpha, beta).
    sigma_eps: added to sigma before dividing by it (keeps sigma = 0 finite).
    config: launch settings; None picks `FlowGuidanceConfig.heuristic`.

  Returns:
    (x_next, v_guided, v_ref, x0_unguided).
  """
  shape = x_t.shape
  config = config or FlowGuidanceConfig.heuristic(shape if len(shape) == 4 else (1, 1, 1, x_t.size), "fft")
  block = config.block_size
  _check_size(x_t, block)
  num_elements = x_t.size
  inputs = [a.reshape(num_elements) for a in (x_t, v, x0_ref, lp, *_previous(v_prev, v_ref_prev))]
  accelerate = v_prev is not None
  kernel = functools.partial(_elementwise_kernel, block=block, sigma_eps=sigma_eps, accelerate=accelerate,
                             masked=num_elements % block != 0)
  out_flat = pl.pallas_call(
      kernel,
      out_shape=tuple(jax.ShapeDtypeStruct((num_elements,), jnp.float32) for _ in range(NUM_OUTPUTS)),
      grid=(pl.cdiv(num_elements, block),),
      compiler_params=_compat.triton_compiler_params(num_warps=config.num_warps, num_stages=1),
      cost_estimate=_cost(num_elements, inputs),
      interpret=interpret,
      name="flow_guidance_accelerated" if accelerate else "flow_guidance",
  )(scalars_4, *inputs)
  return tuple(out.reshape(shape) for out in out_flat)


def flow_guidance_dwt(x_t, v, x0_ref, v_prev, v_ref_prev, scalars_4, *, sigma_eps: float,
                      config: FlowGuidanceConfig | None, interpret: bool):
  """Haar-guided step in one kernel; [B, H, W, C] inputs with even H, W -> four float32 [B, H, W, C].

  Arguments are as for `guided_update`, less `lp`: the kernel forms the Haar low-pass itself.
  """
  shape = x_t.shape
  batch, height, width, channels = shape
  config = config or FlowGuidanceConfig.heuristic(shape, "dwt")
  block_rows, block_w, block_c = config.dwt_tile(shape)
  _check_size(x_t, block_rows * 2 * width * channels)
  view = (batch * height // 2, 2, width // 2, 2, channels)  # Free: NHWC is row-major.
  inputs = [a.reshape(view) for a in (x_t, v, x0_ref, *_previous(v_prev, v_ref_prev))]
  row_blocks, col_blocks = pl.cdiv(view[0], block_rows), pl.cdiv(view[2], block_w)
  accelerate = v_prev is not None
  masked = view[0] % block_rows != 0 or view[2] % block_w != 0 or channels != block_c
  kernel = functools.partial(_haar_kernel, block_rows=block_rows, block_w=block_w, block_c=block_c,
                             col_blocks=col_blocks, sigma_eps=sigma_eps, accelerate=accelerate, masked=masked)
  out_views = pl.pallas_call(
      kernel,
      out_shape=tuple(jax.ShapeDtypeStruct(view, jnp.float32) for _ in range(NUM_OUTPUTS)),
      # One flat grid axis: a second axis would be capped at 65535 programs.
      grid=(row_blocks * col_blocks,),
      compiler_params=_compat.triton_compiler_params(num_warps=config.num_warps, num_stages=1),
      cost_estimate=_cost(x_t.size, inputs),
      interpret=interpret,
      name="flow_guidance_haar_accelerated" if accelerate else "flow_guidance_haar",
  )(scalars_4, *inputs)
  return tuple(out.reshape(shape) for out in out_views)

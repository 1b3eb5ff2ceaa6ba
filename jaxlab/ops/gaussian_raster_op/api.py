"""Public Gaussian rasterization op: `gaussian_raster`, dispatched to XLA or a Pallas (Triton) kernel.

Every implementation returns (rgb, alpha, depth_sum); the expected depth
depth_sum / max(alpha, 1e-10) is formed here, once, so all implementations agree on it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import _compat
from jaxlab.ops import registry
from jaxlab.ops.gaussian_raster_op.reference import gaussian_raster_reference, tile_grid
from kernels_pallas.gaussian_raster.config import SUPPORTED_TILE_SIZES, GaussianRasterConfig

# Where nothing was hit alpha is 0 and so is depth_sum: the floor only avoids 0 / 0.
_MIN_ALPHA_FOR_DEPTH = 1e-10


@jax.jit  # One program per shape for eager callers instead of one per elementwise op.
def _expected_depth(depth_sum_hw: jax.Array, alpha_hw: jax.Array) -> jax.Array:
  return depth_sum_hw / jnp.maximum(alpha_hw, _MIN_ALPHA_FOR_DEPTH)


def _xla(
    means2d, conics, colors, opacities, depths, gaussian_ids, tile_ranges, background,
    *, width, height, tile_size, interpret,
):
  del interpret  # Nothing to interpret: plain XLA.
  return gaussian_raster_reference(
      means2d, conics, colors, opacities, depths, gaussian_ids, tile_ranges, background,
      width=width, height=height, tile_size=tile_size,
  )


def _pallas_triton(
    means2d, conics, colors, opacities, depths, gaussian_ids, tile_ranges, background,
    *, width, height, tile_size, interpret,
):
  registry.require_platform("pallas_triton", interpret=interpret)
  kernel = registry.load_kernel("pallas_triton", "kernels_pallas.gaussian_raster.triton")
  if tile_size not in SUPPORTED_TILE_SIZES:
    raise NotImplementedError(f"pallas_triton supports tile_size in {SUPPORTED_TILE_SIZES}, got {tile_size}")
  return kernel.rasterize(
      means2d, conics, colors, opacities, depths, gaussian_ids, tile_ranges, background,
      width=width, height=height, tile_size=tile_size,
      config=GaussianRasterConfig.heuristic(tile_size), interpret=interpret,
  )


_GAUSSIAN_RASTER = registry.Op("gaussian_raster", {"xla": _xla, "pallas_triton": _pallas_triton})

_FLOAT_INPUTS = ("means2d_n2", "conics_n3", "colors_n3", "opacities_n", "depths_n")


def _check_positive_int(name: str, value) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
    raise ValueError(f"gaussian_raster needs {name} to be a positive int, got {value!r}")


def _check_array(name: str, array, shape: tuple, dtype) -> None:
  if not hasattr(array, "shape") or not hasattr(array, "dtype"):
    raise ValueError(
        f"gaussian_raster needs {name} as an array of shape {shape} {jnp.dtype(dtype)}, got {type(array).__name__}"
    )
  if tuple(array.shape) != shape:
    raise ValueError(f"gaussian_raster needs {name} of shape {shape}, got {tuple(array.shape)}")
  if jnp.dtype(array.dtype) != jnp.dtype(dtype):
    raise ValueError(f"gaussian_raster needs {name} of dtype {jnp.dtype(dtype)}, got {array.dtype}")


def _check_arguments(arrays: dict, background, *, width, height, tile_size) -> None:
  """Shapes, dtypes and sizes; raises ValueError naming the first problem."""
  _check_positive_int("width", width)
  _check_positive_int("height", height)
  _check_positive_int("tile_size", tile_size)
  means2d = arrays["means2d_n2"]
  if not hasattr(means2d, "shape") or len(means2d.shape) != 2:
    got = getattr(means2d, "shape", type(means2d).__name__)
    raise ValueError(f"gaussian_raster needs means2d_n2 of shape [N, 2], got {got}")
  num = means2d.shape[0]
  expected = {
      "means2d_n2": (num, 2), "conics_n3": (num, 3), "colors_n3": (num, 3), "opacities_n": (num,), "depths_n": (num,),
  }
  for name in _FLOAT_INPUTS:
    _check_array(name, arrays[name], expected[name], jnp.float32)
  ids = arrays["gaussian_ids_k"]
  if not hasattr(ids, "shape") or len(ids.shape) != 1:
    got = getattr(ids, "shape", type(ids).__name__)
    raise ValueError(f"gaussian_raster needs gaussian_ids_k of shape [K], got {got}")
  _check_array("gaussian_ids_k", ids, tuple(ids.shape), jnp.int32)
  tiles_x, tiles_y = tile_grid(width, height, tile_size)
  _check_array("tile_ranges_t2", arrays["tile_ranges_t2"], (tiles_x * tiles_y, 2), jnp.int32)
  if background is not None:
    _check_array("background", background, (3,), jnp.float32)


def _check_values(arrays: dict, background) -> None:
  """Value checks on concrete inputs (skipped under jit/grad/vmap, where values are unknown).

  Ranges must be ascending, disjoint and inside [0, K]; every Gaussian a range refers to
  must exist and have finite parameters.
  """
  leaves = [*arrays.values(), background]
  if any(isinstance(x, (_compat.Tracer, jax.ShapeDtypeStruct)) for x in leaves):
    return
  ranges = np.asarray(arrays["tile_ranges_t2"])
  ids = np.asarray(arrays["gaussian_ids_k"])
  num_slots, num = ids.shape[0], arrays["means2d_n2"].shape[0]
  flat = ranges.reshape(-1)
  if flat.size and (flat.min() < 0 or flat.max() > num_slots or np.any(np.diff(flat) < 0)):
    raise ValueError(
        "gaussian_raster needs tile_ranges_t2 ascending and disjoint within [0, K] "
        f"(K = {num_slots}), as bin_gaussians makes them"
    )
  # Slots covered by some range: +1 at each start, -1 at each end, running sum > 0.
  coverage = np.zeros(num_slots + 1, np.int64)
  np.add.at(coverage, ranges[:, 0], 1)
  np.add.at(coverage, ranges[:, 1], -1)
  used_ids = ids[np.cumsum(coverage)[:num_slots] > 0]
  if used_ids.size and (used_ids.min() < 0 or used_ids.max() >= num):
    raise ValueError(
        f"gaussian_raster: gaussian_ids_k refers to Gaussians outside [0, {num}) "
        f"(got {used_ids.min()}..{used_ids.max()})"
    )
  used = np.unique(used_ids)
  for name in _FLOAT_INPUTS:
    values = np.asarray(arrays[name])[used]
    if not np.all(np.isfinite(values)):
      bad = used[~np.isfinite(values.reshape(used.size, -1)).all(axis=1)]
      raise ValueError(
          f"gaussian_raster: {name} is not finite for {bad.size} binned Gaussian(s), e.g. index {int(bad[0])}"
      )
  if background is not None and not np.all(np.isfinite(np.asarray(background))):
    raise ValueError(f"gaussian_raster needs a finite background, got {np.asarray(background)}")


def _prepare(arrays: dict, background, *, width, height, tile_size):
  _check_arguments(arrays, background, width=width, height=height, tile_size=tile_size)
  _check_values(arrays, background)
  return jnp.zeros((3,), jnp.float32) if background is None else background


def gaussian_raster(
    means2d_n2: jax.Array,
    conics_n3: jax.Array,
    colors_n3: jax.Array,
    opacities_n: jax.Array,
    depths_n: jax.Array,
    gaussian_ids_k: jax.Array,
    tile_ranges_t2: jax.Array,
    *,
    width: int,
    height: int,
    tile_size: int = 16,
    background: jax.Array | None = None,
    implementation: registry.ImplementationArg = None,
    interpret: bool = False,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Rasterizes binned 2D Gaussians front to back (3DGS image formation), differentiably.

  Per pixel, over its tile's Gaussians in depth order: sigma = 0.5 (a dx² + c dy²) + b dx dy
  with d = mean - pixel centre; alpha = min(0.99, opacity exp(-sigma)), skipped if sigma < 0
  or alpha < 1/255; compositing stops before the Gaussian that would take the transmittance
  T below 1e-4. Differentiable w.r.t. every float input (and background) under jax.grad,
  jit and vmap; integer inputs get no gradient.

  Args:
    means2d_n2: [N, 2] float32 pixel-space centres (pixel (i, j) has its centre at (i+.5, j+.5)).
    conics_n3: [N, 3] float32 inverse 2D covariances (a, b, c) of [[a, b], [b, c]].
    colors_n3: [N, 3] float32 colours.
    opacities_n: [N] float32 opacities in [0, 1].
    depths_n: [N] float32 camera-space depths.
    gaussian_ids_k: [K] int32 intersections sorted by (tile, depth), from `bin_gaussians`.
    tile_ranges_t2: [num_tiles, 2] int32 [start, end) per row-major tile, from `bin_gaussians`.
    width, height: image size in pixels.
    tile_size: tile edge in pixels (the binning's).
    background: [3] float32 colour seen through the remaining transmittance; None = black.
    implementation: None (best available on `jax.default_backend()`), one of
      `registry.IMPLEMENTATIONS`, or a sequence of them tried in order.
    interpret: run Pallas implementations in the Pallas interpreter (any backend, slow).

  Returns:
    rgb [H, W, 3] = sum w c + T_final background; alpha [H, W] = 1 - T_final;
    depth [H, W] = sum w d / max(alpha, 1e-10), the expected depth (0 where nothing was hit).

  Raises:
    ValueError: bad shapes, dtypes or sizes; on concrete inputs also malformed ranges,
      out-of-range ids or non-finite parameters of binned Gaussians.
    registry.NoImplementationError: no requested implementation could serve the call.
  """
  arrays = dict(
      means2d_n2=means2d_n2, conics_n3=conics_n3, colors_n3=colors_n3, opacities_n=opacities_n,
      depths_n=depths_n, gaussian_ids_k=gaussian_ids_k, tile_ranges_t2=tile_ranges_t2,
  )
  background_3 = _prepare(arrays, background, width=width, height=height, tile_size=tile_size)
  if means2d_n2.shape[0] == 0 or gaussian_ids_k.shape[0] == 0:
    # Nothing can be composited: every implementation would return the background.
    rgb = jnp.broadcast_to(background_3, (height, width, 3))
    zeros = jnp.zeros((height, width), jnp.float32)
    return rgb, zeros, zeros
  rgb, alpha, depth_sum = _GAUSSIAN_RASTER(
      *arrays.values(), background_3,
      width=width, height=height, tile_size=tile_size, implementation=implementation, interpret=interpret,
  )
  return rgb, alpha, _expected_depth(depth_sum, alpha)


def resolve_gaussian_raster(
    means2d_n2, conics_n3, colors_n3, opacities_n, depths_n, gaussian_ids_k, tile_ranges_t2,
    *,
    width: int,
    height: int,
    tile_size: int = 16,
    background=None,
    implementation: registry.ImplementationArg = None,
    interpret: bool = False,
) -> str:
  """Name of the implementation `gaussian_raster` would run for these arguments; runs nothing.

  Arrays may be `jax.ShapeDtypeStruct`s.
  """
  arrays = dict(
      means2d_n2=means2d_n2, conics_n3=conics_n3, colors_n3=colors_n3, opacities_n=opacities_n,
      depths_n=depths_n, gaussian_ids_k=gaussian_ids_k, tile_ranges_t2=tile_ranges_t2,
  )
  _check_arguments(arrays, background, width=width, height=height, tile_size=tile_size)
  background_3 = jax.ShapeDtypeStruct((3,), jnp.float32) if background is None else background
  return _GAUSSIAN_RASTER.resolve(
      *arrays.values(), background_3,
      width=width, height=height, tile_size=tile_size, implementation=implementation, interpret=interpret,
  )

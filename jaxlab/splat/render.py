"""`render`: projection, tile binning and rasterization composed, differentiable end to end.

    out = render(gaussians, camera, capacity=estimate_capacity_for(gaussians, camera))
    loss = jnp.mean(jnp.abs(out.rgb - image))          # jax.grad reaches every Gaussian parameter

Batches of cameras: `jax.vmap(render, in_axes=(None, 0))` (pass `capacity`, a static int).
"""

import functools
import warnings

import flax.struct
import jax

from jaxlab import _compat
from jaxlab.ops import gaussian_raster
from jaxlab.splat.binning import bin_gaussians, estimate_capacity
from jaxlab.splat.camera import Camera
from jaxlab.splat.gaussians import Gaussians
from jaxlab.splat.project import project
from jaxlab.splat.validate import check_gaussians

OVERFLOW_MODES = ("error", "warn", "ignore")


class IntersectionOverflowError(RuntimeError):
  """More Gaussian–tile intersections than the capacity the caller reserved."""


@flax.struct.dataclass
class RenderOutput:
  rgb: jax.Array  # [H, W, 3]
  alpha: jax.Array  # [H, W] accumulated opacity
  depth: jax.Array  # [H, W] expected depth (0 where nothing was hit)
  means2d: jax.Array  # [N, 2] projected centres (their gradient drives densification)
  radii: jax.Array  # [N] int32; 0 = culled
  num_intersections: jax.Array  # int32: the true Gaussian–tile pair count
  overflow: jax.Array  # bool: num_intersections exceeded the capacity (image is incomplete)


def _report_overflow(overflow, count, *, capacity: int, mode: str) -> None:
  if not bool(overflow):
    return
  message = (
      f"tile binning overflow: {int(count)} Gaussian-tile intersections but capacity={capacity}; "
      "the image is missing Gaussians. Pass a larger `capacity` (see jaxlab.splat.estimate_capacity_for)."
  )
  if mode == "error":
    raise IntersectionOverflowError(message)
  warnings.warn(message, RuntimeWarning, stacklevel=2)


def estimate_capacity_for(gaussians: Gaussians, camera: Camera, *, tile_size: int = 16, eps2d: float = 0.3, margin: float = 1.25) -> int:
  """Host-side intersection capacity for rendering `gaussians` from `camera` (or a camera batch)."""
  projected = jax.jit(jax.vmap(functools.partial(project, eps2d=eps2d), in_axes=(None, 0)))(gaussians, _as_batch(camera))
  return max(
      estimate_capacity(r, m, width=camera.width, height=camera.height, tile_size=tile_size, margin=margin)
      for r, m in zip(projected.radii, projected.means2d)
  )


def _as_batch(camera: Camera) -> Camera:
  return jax.tree.map(lambda x: x[None], camera) if camera.fx.ndim == 0 else camera


def render(
    gaussians: Gaussians,
    camera: Camera,
    *,
    background: jax.Array | None = None,
    capacity: int | None = None,
    tile_size: int = 16,
    eps2d: float = 0.3,
    antialiased: bool = False,
    on_overflow: str = "error",
    implementation: str | tuple[str, ...] | None = None,
    interpret: bool = False,
    means2d_offset: jax.Array | None = None,
) -> RenderOutput:
  """Renders one camera's view of the Gaussians.

  Args:
    gaussians: the scene (inactive slots are culled).
    camera: a single camera (vmap for batches).
    background: [3] colour behind the Gaussians (default black).
    capacity: static number of Gaussian–tile intersections to reserve. Required under
      jit/vmap; when None it is estimated from concrete inputs (one extra projection).
    tile_size: rasterization tile edge in pixels.
    eps2d: 2D covariance dilation in pixels² (0.3 as in 3DGS).
    antialiased: gsplat's antialiased mode (opacity compensation for the dilation).
    on_overflow: "error" raises IntersectionOverflowError, "warn" warns, "ignore" only sets
      `overflow` in the output. Overflow is never silent unless asked for.
    implementation, interpret: passed to `jaxlab.ops.gaussian_raster`.
    means2d_offset: optional [N, 2] pixels added to the projected means before binning and
      rasterization. Pass zeros and differentiate with respect to it to get d loss / d means2d,
      the view-space gradient that 3DGS densification accumulates.
  """
  if on_overflow not in OVERFLOW_MODES:
    raise ValueError(f"on_overflow={on_overflow!r}; choose one of {OVERFLOW_MODES}")
  if camera.fx.ndim != 0:
    raise ValueError(f"render takes one camera, got a batch of shape {camera.fx.shape}; use jax.vmap(render, in_axes=(None, 0))")
  check_gaussians(gaussians)
  if capacity is None:
    if any(isinstance(x, _compat.Tracer) for x in jax.tree.leaves((gaussians, camera))):
      raise ValueError("render under jit/vmap/grad needs a static `capacity=`; compute one with estimate_capacity_for(gaussians, camera)")
    capacity = estimate_capacity_for(gaussians, camera, tile_size=tile_size, eps2d=eps2d)

  projected = project(gaussians, camera, eps2d=eps2d, antialiased=antialiased)
  if means2d_offset is not None:
    projected = projected.replace(means2d=projected.means2d + means2d_offset)
  bins = bin_gaussians(projected.means2d, projected.radii, projected.depths, width=camera.width, height=camera.height, tile_size=tile_size, capacity=capacity)
  if on_overflow != "ignore":
    jax.debug.callback(functools.partial(_report_overflow, capacity=capacity, mode=on_overflow), bins.overflow, bins.num_intersections)
  rgb, alpha, depth = gaussian_raster(
      projected.means2d,
      projected.conics,
      projected.colors,
      projected.opacities,
      projected.depths,
      bins.gaussian_ids,
      bins.tile_ranges,
      width=camera.width,
      height=camera.height,
      tile_size=tile_size,
      background=background,
      implementation=implementation,
      interpret=interpret,
  )
  return RenderOutput(
      rgb=rgb,
      alpha=alpha,
      depth=depth,
      means2d=projected.means2d,
      radii=projected.radii,
      num_intersections=bins.num_intersections,
      overflow=bins.overflow,
  )

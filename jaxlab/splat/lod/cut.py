"""The online cut: which clusters to draw for a camera and tolerance tau, and drawing them.

Per row (instance, cluster), both spheres are placed by the instance's transform and
their footprints taken: F = pi * r^2 * f_x * f_y / z^2, the projected area in pixels^2 of
a sphere of radius r at view depth z (z^2 ignores the sign of z). A row is drawn iff

  F_child <= tau < F_parent        (F_child = -1 on LOD0, F_parent = +inf on the top level)

a flat test with no tree walk. Rows on the cut whose bounding sphere (their Gaussians to
3 standard deviations) lies outside the view frustum, widened by a tile, are then skipped
(`cull=True`): the rasterizer would cull each of their Gaussians anyway, so the image is
the same and the buffer holds only what can be seen. The selected clusters' Gaussians are gathered into a
fixed-capacity buffer (rows' Gaussian counts, a prefix sum, and a `searchsorted` per slot:
a segmented arange), placed by their instance's transform, and rendered with
`jaxlab.splat.render`. Nothing here depends on the values of tau or the camera, so
`render_cut` compiles once per image size and capacity and then runs for any of them.
A selection larger than the buffer is reported (`overflow`, and an error or warning),
never silently cut short.
"""

from __future__ import annotations

import functools
import warnings

import flax.struct
import jax
import jax.numpy as jnp

from jaxlab.splat.camera import Camera
from jaxlab.splat.gaussians import Gaussians, rotation_matrices
from jaxlab.splat.lod.instances import transform_gaussians, transform_points
from jaxlab.splat.lod.scene import ComposedScene
from jaxlab.splat.render import OVERFLOW_MODES, RenderOutput, render


class SelectionOverflowError(RuntimeError):
  """The cut selected more Gaussians than the buffer reserved for them."""


# Frustum margin in pixels: a projected Gaussian reaches past its 3-sigma sphere by its 2D
# dilation (eps2d), well under a 16-pixel tile.
CULL_MARGIN_PIXELS = 16.0


@flax.struct.dataclass
class Selection:
  on_cut: jax.Array  # [R] bool: F_child <= tau < F_parent
  visible: jax.Array  # [R] bool: bounding sphere inside the widened frustum (all True without culling)
  selected: jax.Array  # [R] bool: on_cut & visible; these rows are drawn
  child_footprint: jax.Array  # [R] pixels^2 (-1 on LOD0)
  parent_footprint: jax.Array  # [R] pixels^2 (+inf on the top level)
  num_gaussians: jax.Array  # int32: Gaussians in the selected clusters


@flax.struct.dataclass
class CutOutput:
  image: RenderOutput
  selection: Selection
  overflow: jax.Array  # bool: the selection did not fit `gaussian_capacity` (image incomplete)


def footprints(centers_r3: jax.Array, radii_r: jax.Array, camera: Camera) -> jax.Array:
  """[R] pi r^2 f_x f_y / z^2 of world-space spheres; z is the centre's camera-space depth."""
  rotation_33 = camera.world_to_camera[:3, :3]
  depth_r = jnp.dot(centers_r3, rotation_33[2], precision=jax.lax.Precision.HIGHEST) + camera.world_to_camera[2, 3]
  return jnp.pi * radii_r * radii_r * camera.fx * camera.fy / (depth_r * depth_r)


def _row_transforms(scene: ComposedScene):
  """Each row's instance transform: (scale [R], rotation [R, 3, 3], translation [R, 3])."""
  inst, row_inst = scene.instances, scene.row_instance
  return inst.scale[row_inst], rotation_matrices(inst.quat)[row_inst], inst.translation[row_inst]


def _row_spheres(scene: ComposedScene, transforms, which: str):
  """World-space (centres [R, 3], radii [R]) and asset-space radii of every row's child, parent or bound sphere."""
  scale_r, rotation_r, translation_r = transforms
  centers = getattr(scene, f"{which}_center")[scene.row_cluster]
  radii = getattr(scene, f"{which}_radius")[scene.row_cluster]
  return transform_points(centers, scale_r, rotation_r, translation_r), radii * scale_r, radii


def in_frustum(centers_r3: jax.Array, radii_r: jax.Array, camera: Camera, margin: float = CULL_MARGIN_PIXELS) -> jax.Array:
  """[R] bool: the world-space sphere reaches into the view frustum widened by `margin` pixels."""
  w2c = camera.world_to_camera
  cam_r3 = jnp.einsum("ij,rj->ri", w2c[:3, :3], centers_r3, precision=jax.lax.Precision.HIGHEST) + w2c[:3, 3]
  # Inward normals of the four side planes (through the camera centre and the widened image edges).
  left = jnp.stack([camera.fx, 0.0, camera.cx + margin])
  right = jnp.stack([-camera.fx, 0.0, camera.width - camera.cx + margin])
  top = jnp.stack([0.0, camera.fy, camera.cy + margin])
  bottom = jnp.stack([0.0, -camera.fy, camera.height - camera.cy + margin])
  normals_43 = jnp.stack([left, right, top, bottom])
  normals_43 = normals_43 / jnp.linalg.norm(normals_43, axis=1, keepdims=True)
  signed_r4 = jnp.einsum("rj,pj->rp", cam_r3, normals_43, precision=jax.lax.Precision.HIGHEST)
  return jnp.all(signed_r4 >= -radii_r[:, None], axis=1) & (cam_r3[:, 2] + radii_r >= camera.near)


def select(scene: ComposedScene, camera: Camera, tau: jax.Array, *, cull: bool = True) -> Selection:
  """The rows on the cut for `camera` at tolerance `tau` (pixels^2), and which of them are seen; traceable."""
  transforms = _row_transforms(scene)
  child_c, child_r, child_r_asset = _row_spheres(scene, transforms, "child")
  parent_c, parent_r, parent_r_asset = _row_spheres(scene, transforms, "parent")
  child_f = jnp.where(child_r_asset < 0, -1.0, footprints(child_c, child_r, camera))
  parent_f = jnp.where(jnp.isposinf(parent_r_asset), jnp.inf, footprints(parent_c, parent_r, camera))
  on_cut = (child_f <= tau) & (tau < parent_f)
  if cull:
    bound_c, bound_r, _ = _row_spheres(scene, transforms, "bound")
    visible = in_frustum(bound_c, bound_r, camera)
  else:
    visible = jnp.ones_like(on_cut)
  selected = on_cut & visible
  counts = jnp.where(selected, scene.count[scene.row_cluster], 0)
  return Selection(on_cut=on_cut, visible=visible, selected=selected, child_footprint=child_f, parent_footprint=parent_f,
                   num_gaussians=jnp.sum(counts, dtype=jnp.int32))


def gather_selected(scene: ComposedScene, selection: Selection, capacity: int) -> tuple[Gaussians, jax.Array]:
  """([capacity] placed Gaussians of the selected rows, slots past the selection inactive; overflow flag)."""
  counts_r = jnp.where(selection.selected, scene.count[scene.row_cluster], 0)
  ends_r = jnp.cumsum(counts_r, dtype=jnp.int32)
  slot_k = jnp.arange(capacity, dtype=jnp.int32)
  # Row of each slot: the first row whose running end exceeds the slot (a segmented arange).
  row_k = jnp.minimum(jnp.searchsorted(ends_r, slot_k, side="right"), counts_r.shape[0] - 1)
  local_k = slot_k - (ends_r[row_k] - counts_r[row_k])
  gaussian_k = scene.start[scene.row_cluster[row_k]] + local_k
  used_k = slot_k < ends_r[-1]
  gaussian_k = jnp.where(used_k, gaussian_k, 0)
  picked = jax.tree.map(lambda x: x[gaussian_k], scene.gaussians)
  inst = scene.instances
  inst_k = scene.row_instance[row_k]
  placed = transform_gaussians(picked, inst.scale[inst_k], inst.quat[inst_k], inst.translation[inst_k])
  return placed.replace(active=picked.active & used_k), ends_r[-1] > capacity


def _report_overflow(overflow, count, *, capacity: int, mode: str) -> None:
  if not bool(overflow):
    return
  message = (f"LOD cut overflow: {int(count)} Gaussians selected but gaussian_capacity={capacity}; the image is "
             "missing clusters. Pass a larger gaussian_capacity (ComposedScene.full_detail_size() always fits).")
  if mode == "error":
    raise SelectionOverflowError(message)
  warnings.warn(message, RuntimeWarning, stacklevel=2)


@functools.partial(jax.jit, static_argnames=("gaussian_capacity", "intersection_capacity", "on_overflow", "tile_size",
                                             "eps2d", "implementation", "cull"))
def render_cut(scene: ComposedScene, camera: Camera, tau: jax.Array, *, gaussian_capacity: int, intersection_capacity: int,
               background: jax.Array | None = None, on_overflow: str = "error", tile_size: int = 16, eps2d: float = 0.3,
               implementation: str | None = None, cull: bool = True) -> CutOutput:
  """Selects the cut for (camera, tau), gathers it and renders it; one compile per shapes.

  Args:
    scene: the composed scene (`compose_scene`), e.g. device-resident.
    camera: one camera.
    tau: tolerance in pixels^2 (0 draws LOD0 everywhere; larger is coarser and faster).
    gaussian_capacity: slots of the gathered buffer (static).
    intersection_capacity: Gaussian-tile pairs for the rasterizer (static).
    on_overflow: "error", "warn" or "ignore" for both buffers; `overflow` is always set.
    cull: skip rows on the cut whose bounding sphere is outside the view (same image).
  """
  if on_overflow not in OVERFLOW_MODES:
    raise ValueError(f"on_overflow={on_overflow!r}; choose one of {OVERFLOW_MODES}")
  selection = select(scene, camera, jnp.asarray(tau, jnp.float32), cull=cull)
  gathered, overflow = gather_selected(scene, selection, gaussian_capacity)
  if on_overflow != "ignore":
    jax.debug.callback(functools.partial(_report_overflow, capacity=gaussian_capacity, mode=on_overflow), overflow,
                       selection.num_gaussians)
  image = render(gathered, camera, capacity=intersection_capacity, background=background, tile_size=tile_size,
                 eps2d=eps2d, on_overflow=on_overflow, implementation=implementation)
  return CutOutput(image=image, selection=selection, overflow=overflow)

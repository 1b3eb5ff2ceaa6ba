"""Gaussians for rigid parts (robot links, objects, the tray) from surface samples and masked captures.

A part's geometry is known (its mesh, from the URDF), so its Gaussians start on the surface:
flat discs oriented by the surface normal, spaced by the sampling density. Their colours come
from the captured images: each point is projected into every view, kept where the depth test
and the part's segmentation mask agree it is visible, and its colour is the mean over those
views (the captures play the role of the real photographs). Points no view sees keep a
fallback colour (the mesh material, or grey), and are counted.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from jaxlab.splat import Camera, Gaussians, rgb_to_sh_dc

# A disc is this much thinner along its normal than across: thin enough to look like a
# surface, thick enough that grazing views still cover pixels.
_DISC_THICKNESS_RATIO = 0.25


@dataclasses.dataclass(frozen=True)
class ColoredPoints:
  """Surface points of a part with the colours the captures give them.

  Attributes:
    points_p3: positions in the frame they were given in.
    colors_p3: RGB in [0, 1].
    views_seen_p: how many views saw each point (0: fallback colour).
  """

  points_p3: np.ndarray
  colors_p3: np.ndarray
  views_seen_p: np.ndarray

  @property
  def seen_fraction(self) -> float:
    return float(np.mean(self.views_seen_p > 0)) if len(self.views_seen_p) else 0.0


def project_points(points_p3: np.ndarray, cameras: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Pixel coordinates [V, P, 2] (x right, y down), camera depths [V, P] and in-front flags [V, P]."""
  world_to_camera_v44 = np.asarray(cameras.world_to_camera, np.float64).reshape(-1, 4, 4)
  homogeneous_p4 = np.concatenate([points_p3, np.ones((len(points_p3), 1))], axis=1)
  in_camera_vp3 = np.einsum("vij,pj->vpi", world_to_camera_v44, homogeneous_p4)[..., :3]
  depth_vp = in_camera_vp3[..., 2]
  safe_depth = np.where(depth_vp > 1e-6, depth_vp, 1.0)
  fx, fy, cx, cy = (np.asarray(v, np.float64).reshape(-1, 1) for v in (cameras.fx, cameras.fy, cameras.cx, cameras.cy))
  pixels_vp2 = np.stack([fx * in_camera_vp3[..., 0] / safe_depth + cx, fy * in_camera_vp3[..., 1] / safe_depth + cy], -1)
  return pixels_vp2, depth_vp, depth_vp > 1e-6


def color_from_views(
    points_p3: np.ndarray,
    cameras: Camera,
    rgb_vhw3: np.ndarray,
    depth_vhw: np.ndarray,
    mask_vhw: np.ndarray,
    *,
    fallback_rgb_p3: np.ndarray | None = None,
    depth_tolerance: float = 0.01,
) -> ColoredPoints:
  """Mean colour of each world point over the views where it is visible and inside the mask.

  Args:
    points_p3: world positions of the part's surface samples.
    cameras: V cameras (batch shape [V]) that took the captures.
    rgb_vhw3: uint8 or [0, 1] float images.
    depth_vhw: camera-space z per pixel (metres), as the simulator's depth buffer gives.
    mask_vhw: True where the part is visible (its segmentation).
    fallback_rgb_p3: colour of points no view sees (default mid grey).
    depth_tolerance: metres between a point's depth and the pixel's for it to count as
      visible (the surface sample and the rasterized mesh differ by about the sampling gap).

  Raises:
    ValueError: if the mask is empty in every view (the part was never captured), naming
      the problem, so a mis-segmented part is not silently painted grey.
  """
  mask_vhw = np.asarray(mask_vhw, bool)
  if not mask_vhw.any():
    raise ValueError("the part's segmentation mask is empty in every view; nothing to colour it from "
                     "(is the body or link id right, and is it inside the cameras' view?)")
  rgb_vhw3 = np.asarray(rgb_vhw3)
  if rgb_vhw3.dtype == np.uint8:
    rgb_vhw3 = rgb_vhw3.astype(np.float64) / 255.0
  num_views, height, width = mask_vhw.shape
  pixels_vp2, depth_vp, in_front_vp = project_points(np.asarray(points_p3, np.float64), cameras)
  col_vp = np.floor(pixels_vp2[..., 0]).astype(np.int64)
  row_vp = np.floor(pixels_vp2[..., 1]).astype(np.int64)
  inside_vp = in_front_vp & (col_vp >= 0) & (col_vp < width) & (row_vp >= 0) & (row_vp < height)
  col_vp, row_vp = np.clip(col_vp, 0, width - 1), np.clip(row_vp, 0, height - 1)
  view_vp = np.broadcast_to(np.arange(num_views)[:, None], col_vp.shape)
  visible_vp = (inside_vp & mask_vhw[view_vp, row_vp, col_vp]
                & (np.abs(depth_vhw[view_vp, row_vp, col_vp] - depth_vp) < depth_tolerance))
  weights_vp = visible_vp.astype(np.float64)
  sums_p3 = np.einsum("vp,vpc->pc", weights_vp, rgb_vhw3[view_vp, row_vp, col_vp])
  seen_p = weights_vp.sum(0)
  fallback = np.full((len(points_p3), 3), 0.5) if fallback_rgb_p3 is None else np.asarray(fallback_rgb_p3, np.float64)
  colors_p3 = np.where(seen_p[:, None] > 0, sums_p3 / np.maximum(seen_p, 1)[:, None], fallback)
  return ColoredPoints(np.asarray(points_p3, np.float64), colors_p3, seen_p.astype(np.int32))


def _quaternions_from_normals(normals_p3: np.ndarray) -> np.ndarray:
  """(w, x, y, z) rotations taking the local z axis onto each unit normal."""
  normals_p3 = normals_p3 / np.maximum(np.linalg.norm(normals_p3, axis=1, keepdims=True), 1e-12)
  z = np.array([0.0, 0.0, 1.0])
  axis_p3 = np.cross(z, normals_p3)
  w_p = 1.0 + normals_p3[:, 2]
  quats_p4 = np.concatenate([w_p[:, None], axis_p3], axis=1)
  # A normal along -z has no unique half-way rotation: use pi about x.
  opposite = w_p < 1e-8
  quats_p4[opposite] = np.array([0.0, 1.0, 0.0, 0.0])
  return quats_p4 / np.linalg.norm(quats_p4, axis=1, keepdims=True)


def surface_gaussians(
    points_p3: np.ndarray,
    normals_p3: np.ndarray,
    colors_p3: np.ndarray,
    *,
    spacing: float,
    opacity: float = 0.95,
    sh_degree: int = 0,
) -> Gaussians:
  """Flat Gaussians on a surface: discs of radius about `spacing` in the tangent plane.

  Args:
    points_p3, normals_p3: surface samples and their normals (any frame; the Gaussians
      are in that frame).
    colors_p3: RGB in [0, 1]; becomes the DC coefficient; higher bands start at zero.
    spacing: mean distance between neighbouring samples (metres); the in-plane standard
      deviation is 0.6 of it, so neighbours overlap without holes.
    opacity: initial opacity of every disc.
    sh_degree: SH degree of the coefficient buffer.
  """
  if len(points_p3) == 0:
    raise ValueError("surface_gaussians got no points; the part has no surface samples")
  if not (spacing > 0 and np.isfinite(spacing)):
    raise ValueError(f"spacing must be a finite number > 0; got {spacing!r}")
  num = len(points_p3)
  in_plane = np.log(0.6 * spacing)
  log_scales_n3 = np.tile([in_plane, in_plane, in_plane + np.log(_DISC_THICKNESS_RATIO)], (num, 1))
  sh_nk3 = np.zeros((num, (sh_degree + 1) ** 2, 3))
  sh_nk3[:, 0] = np.asarray(rgb_to_sh_dc(jnp.asarray(np.clip(colors_p3, 0.0, 1.0), jnp.float32)))
  opacity_logit = float(np.log(opacity / (1.0 - opacity)))
  return Gaussians(
      means=jnp.asarray(points_p3, jnp.float32),
      log_scales=jnp.asarray(log_scales_n3, jnp.float32),
      quats=jnp.asarray(_quaternions_from_normals(np.asarray(normals_p3, np.float64)), jnp.float32),
      opacity_logits=jnp.full((num,), opacity_logit, jnp.float32),
      sh=jnp.asarray(sh_nk3, jnp.float32),
      active=jnp.ones((num,), bool),
  )


def sample_spacing(area: float, count: int) -> float:
  """Mean neighbour distance of `count` points spread evenly over `area` square metres."""
  if count <= 0:
    raise ValueError(f"count must be > 0; got {count}")
  return float(np.sqrt(area / count))

"""Where a fit's first Gaussians go when the dataset has no point cloud.

The rule, in order of preference (`initial_points` applies it and says which it used):

1. **depth**: the dataset has depth maps: pixels with depth > 0 are lifted into the world.
2. **visual hull**: the images have alpha masks (RGBA, or mask files) that mark empty
   pixels. A point is in the hull when every training view that sees it (in front of the
   camera, inside the image) has mask >= `threshold` there, and at least half of the views
   see it. The hull is carved on a coarse voxel grid over the cameras' bounding box, then on
   a finer grid over what survived; rays through random mask pixels are marched through the
   grid to where they first enter the hull, refined by bisection with the exact test. The
   points are that surface as the training views see it, coloured by the pixel each came
   through.
3. **shared frusta**: neither: points are drawn in the region seen by at least half of the
   training cameras, between the near plane and the distance of the cameras' common
   look-at point times `far_factor`.

Depth and hull points take the colour of the pixel they were lifted from; shared-frusta
points the mean of the images at their projections. Everything runs in NumPy on the host (a
few seconds for 48 views).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

log = logging.getLogger(__name__)

RULES = ("point_cloud", "depth", "visual_hull", "shared_frusta")


@dataclasses.dataclass(frozen=True)
class Views:
  """Host copies of what projection needs: world_to_camera [V, 4, 4], fx fy cx cy [V], size."""

  world_to_camera_v44: np.ndarray
  fx_v: np.ndarray
  fy_v: np.ndarray
  cx_v: np.ndarray
  cy_v: np.ndarray
  width: int
  height: int

  @classmethod
  def from_cameras(cls, cameras) -> "Views":
    as_np = lambda x: np.asarray(x, np.float64)
    return cls(as_np(cameras.world_to_camera), as_np(cameras.fx), as_np(cameras.fy), as_np(cameras.cx),
               as_np(cameras.cy), int(cameras.width), int(cameras.height))

  @property
  def centers_v3(self) -> np.ndarray:
    rotation, translation = self.world_to_camera_v44[:, :3, :3], self.world_to_camera_v44[:, :3, 3]
    return -np.einsum("vij,vi->vj", rotation, translation)

  @property
  def forward_v3(self) -> np.ndarray:
    """Viewing directions in the world (the camera's +z row of world_to_camera)."""
    return self.world_to_camera_v44[:, 2, :3]

  def project(self, points_p3: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(column [V, P], row [V, P], depth [V, P]) in pixels; depth is camera z."""
    camera_vp3 = np.matmul(points_p3[None], np.swapaxes(self.world_to_camera_v44[:, :3, :3], 1, 2))
    camera_vp3 += self.world_to_camera_v44[:, None, :3, 3]
    z = camera_vp3[..., 2]
    safe_z = np.where(np.abs(z) > 1e-9, z, 1e-9)
    col = self.fx_v[:, None] * camera_vp3[..., 0] / safe_z + self.cx_v[:, None]
    row = self.fy_v[:, None] * camera_vp3[..., 1] / safe_z + self.cy_v[:, None]
    return col, row, z

  def sees(self, col_vp, row_vp, z_vp, near: float) -> np.ndarray:
    return (z_vp > near) & (col_vp >= 0) & (col_vp < self.width) & (row_vp >= 0) & (row_vp < self.height)


def _sample(image_vhw: np.ndarray, col_vp: np.ndarray, row_vp: np.ndarray) -> np.ndarray:
  """Nearest-pixel lookup of a per-view image at projected points ([V, P] or [V, P, C])."""
  num_views, height, width = image_vhw.shape[:3]
  c = np.clip(col_vp.astype(np.int64), 0, width - 1)
  r = np.clip(row_vp.astype(np.int64), 0, height - 1)
  return image_vhw[np.arange(num_views)[:, None], r, c]


def _chunks(count: int, size: int):
  for start in range(0, count, size):
    yield slice(start, min(start + size, count))


def _mean_colors(views: Views, images_vhw3: np.ndarray, points_p3: np.ndarray, near: float) -> np.ndarray:
  colors = np.zeros((len(points_p3), 3))
  for part in _chunks(len(points_p3), 8192):
    col, row, z = views.project(points_p3[part])
    seen = views.sees(col, row, z, near)
    rgb = _sample(images_vhw3, col, row)
    colors[part] = np.sum(rgb * seen[..., None], axis=0) / np.maximum(seen.sum(axis=0), 1)[:, None]
  return colors


def _inside_hull(views: Views, masks_vhw: np.ndarray, points_p3: np.ndarray, threshold: float,
                 near: float, min_seen: int) -> np.ndarray:
  """[P] bool: no view that sees the point marks it empty, and `min_seen` or more views see it."""
  keep = np.zeros(len(points_p3), bool)
  for part in _chunks(len(points_p3), 16384):
    col, row, z = views.project(points_p3[part])
    seen = views.sees(col, row, z, near)
    filled = _sample(masks_vhw, col, row) >= threshold
    keep[part] = np.all(filled | ~seen, axis=0) & (seen.sum(axis=0) >= min_seen)
  return keep


def _grid_centers(low_3, high_3, resolution: int) -> tuple[np.ndarray, np.ndarray]:
  """Voxel centres [R^3, 3] of a cube grid over the box, and the voxel edge [3]."""
  edge_3 = (high_3 - low_3) / resolution
  axes = [low_3[i] + (np.arange(resolution) + 0.5) * edge_3[i] for i in range(3)]
  return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3), edge_3


def _dilate(occupied_rrr: np.ndarray) -> np.ndarray:
  padded = np.pad(occupied_rrr, 1, constant_values=False)
  out = occupied_rrr.copy()
  for axis in range(3):
    for shift in (-1, 1):
      out |= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
  return out


@dataclasses.dataclass(frozen=True)
class HullGrid:
  """Voxels [R, R, R] whose centres lie in the visual hull, over the box low_3 .. low_3 + R * edge_3."""

  occupied_rrr: np.ndarray
  low_3: np.ndarray
  edge_3: np.ndarray

  def lookup(self, points_p3: np.ndarray) -> np.ndarray:
    index = np.floor((points_p3 - self.low_3) / self.edge_3).astype(np.int64)
    size = self.occupied_rrr.shape[0]
    valid = np.all((index >= 0) & (index < size), axis=-1)
    index = np.clip(index, 0, size - 1)
    return valid & self.occupied_rrr[index[..., 0], index[..., 1], index[..., 2]]


def carve_hull(inside, centers_v3: np.ndarray, resolutions: tuple[int, ...]) -> HullGrid:
  """The hull on a grid over the cameras' box, each next grid over what the previous kept."""
  low, high = centers_v3.min(axis=0), centers_v3.max(axis=0)
  pad = 0.05 * np.max(high - low)
  low, high = low - pad, high + pad
  for resolution in resolutions:
    grid_r3, edge = _grid_centers(low, high, resolution)
    occupied = inside(grid_r3).reshape((resolution,) * 3)
    # The next box comes from the dilated grid: parts thinner than a voxel whose centres all missed stay in it.
    cells = grid_r3[_dilate(occupied).reshape(-1)]
    if not len(cells):
      raise ValueError("the training masks' visual hull is empty: no point is inside the mask of every view that sees "
                       "it and seen by enough views (are the masks inverted, or the poses wrong?)")
    grid = HullGrid(occupied, low, edge)
    low, high = cells.min(axis=0) - 0.5 * edge, cells.max(axis=0) + 0.5 * edge
  return grid


def _pixel_rays(views: Views, v_p, r_p, c_p, rng) -> tuple[np.ndarray, np.ndarray]:
  """World origins [P, 3] and directions [P, 3] (scaled so that t is camera depth) through
  random positions inside pixels (v, r, c)."""
  x = (c_p + rng.uniform(size=len(c_p)) - views.cx_v[v_p]) / views.fx_v[v_p]
  y = (r_p + rng.uniform(size=len(r_p)) - views.cy_v[v_p]) / views.fy_v[v_p]
  camera_p3 = np.stack([x, y, np.ones_like(x)], axis=-1)
  rotation = views.world_to_camera_v44[v_p, :3, :3]
  return views.centers_v3[v_p], np.einsum("pji,pj->pi", rotation, camera_p3)


def _first_entry(grid: HullGrid, origins_p3, dirs_p3, inside, bisections: int = 6) -> np.ndarray:
  """Depth t [P] at which each ray first enters the hull (NaN if it never does)."""
  low, high = grid.low_3, grid.low_3 + grid.edge_3 * grid.occupied_rrr.shape[0]
  with np.errstate(divide="ignore", invalid="ignore"):
    t0, t1 = (low - origins_p3) / dirs_p3, (high - origins_p3) / dirs_p3
  t_in = np.maximum(np.nanmax(np.minimum(t0, t1), axis=-1), 0.0)
  t_out = np.nanmin(np.maximum(t0, t1), axis=-1)
  step = 0.5 * grid.edge_3.min() / np.linalg.norm(dirs_p3, axis=-1)
  num_samples = int(np.ceil(np.nanmax(np.where(t_out > t_in, (t_out - t_in) / step, 0.0)))) + 1
  t_ps = t_in[:, None] + step[:, None] * np.arange(num_samples)[None, :]
  hit_ps = grid.lookup(origins_p3[:, None] + t_ps[..., None] * dirs_p3[:, None]) & (t_ps <= t_out[:, None])
  found = hit_ps.any(axis=1)
  k = np.argmax(hit_ps, axis=1)
  # The surface lies between the last sample outside and the first inside: bisect with the exact test.
  lo = np.where(k > 0, t_ps[np.arange(len(k)), np.maximum(k - 1, 0)], t_ps[:, 0])
  hi = t_ps[np.arange(len(k)), k]
  for _ in range(bisections):
    mid = 0.5 * (lo + hi)
    is_in = inside(origins_p3 + mid[:, None] * dirs_p3)
    hi, lo = np.where(is_in, mid, hi), np.where(is_in, lo, mid)
  return np.where(found, hi, np.nan)


def visual_hull_points(views: Views, masks_vhw: np.ndarray, num_points: int, rng: np.random.Generator, *,
                       threshold: float = 0.5, near: float = 0.01, min_seen_fraction: float = 0.5,
                       resolutions: tuple[int, ...] = (40, 96)) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
  """Points where rays through random mask pixels first enter the masks' visual hull.

  Returns (points [P, 3], (view, row, column) [P] each: the pixel each point was seen through).
  """
  min_seen = max(2, int(np.ceil(min_seen_fraction * len(masks_vhw))))
  inside = lambda p: _inside_hull(views, masks_vhw, p, threshold, near, min_seen)
  grid = carve_hull(inside, views.centers_v3, resolutions)
  v, r, c = np.nonzero(masks_vhw >= threshold)
  points, pixels = [], []
  for _ in range(10):  # rays that miss the hull (mask noise, thin parts) are drawn again
    pick = rng.integers(0, len(v), 2 * num_points)
    origins, dirs = _pixel_rays(views, v[pick], r[pick], c[pick], rng)
    t = np.concatenate([_first_entry(grid, origins[part], dirs[part], inside) for part in _chunks(len(pick), 4096)])
    hit = np.isfinite(t)
    points.append(origins[hit] + t[hit, None] * dirs[hit])
    pixels.append(np.stack([v[pick], r[pick], c[pick]], axis=-1)[hit])
    if sum(len(p) for p in points) >= num_points:
      pixels_p3 = np.concatenate(pixels)[:num_points]
      return np.concatenate(points)[:num_points], tuple(pixels_p3.T)
  raise ValueError(f"could not place {num_points} points on the masks' visual hull")


def shared_frusta_points(views: Views, num_points: int, rng: np.random.Generator, *, near: float = 0.01,
                         min_fraction: float = 0.5, far_factor: float = 1.5) -> np.ndarray:
  """[P, 3] points seen by at least `min_fraction` of the views (see the module docstring)."""
  centers, forward = views.centers_v3, views.forward_v3
  # The point closest to every optical axis (least squares): the cameras' common target.
  projectors = np.eye(3)[None] - forward[:, :, None] * forward[:, None, :]
  target = np.linalg.lstsq(projectors.sum(axis=0), np.einsum("vij,vj->i", projectors, centers), rcond=None)[0]
  reach = far_factor * np.median(np.linalg.norm(centers - target, axis=1))
  points = np.zeros((0, 3))
  for _ in range(50):
    drawn = target + rng.uniform(-reach, reach, (max(4 * num_points, 4096), 3))
    col, row, z = views.project(drawn)
    seen = views.sees(col, row, z, near) & (z < reach + np.linalg.norm(centers - target, axis=1)[:, None])
    points = np.concatenate([points, drawn[seen.mean(axis=0) >= min_fraction]])
    if len(points) >= num_points:
      return points[:num_points]
  raise ValueError(
      f"fewer than {num_points} random points are seen by {min_fraction:.0%} of the training cameras: "
      "their views barely overlap; give the dataset a point cloud")


def depth_points(views: Views, depths_vhw: np.ndarray, num_points: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
  """World points lifted from randomly chosen pixels with depth > 0, and those pixels' (view, row, column)."""
  v, r, c = np.nonzero(depths_vhw > 0)
  if not len(v):
    raise ValueError("the depth maps hold no pixel with depth > 0")
  pick = rng.choice(len(v), size=min(num_points, len(v)), replace=False)
  v, r, c = v[pick], r[pick], c[pick]
  z = depths_vhw[v, r, c]
  camera_p3 = np.stack([(c + 0.5 - views.cx_v[v]) / views.fx_v[v] * z, (r + 0.5 - views.cy_v[v]) / views.fy_v[v] * z, z], -1)
  rotation, translation = views.world_to_camera_v44[v, :3, :3], views.world_to_camera_v44[v, :3, 3]
  return np.einsum("pji,pj->pi", rotation, camera_p3 - translation), (v, r, c)


def _has_empty_pixels(masks_vhw: np.ndarray | None, threshold: float) -> bool:
  """Masks mark something only if some pixel is empty (an all-opaque RGBA says nothing)."""
  return masks_vhw is not None and bool(np.any(masks_vhw < threshold))


def initial_points(scene, num_points: int, seed: int, *, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, str]:
  """(points [P, 3] float32, colours [P, 3] float32 in [0, 1], the rule used) for a `SceneData`."""
  if scene.points is not None and len(scene.points):
    return np.asarray(scene.points, np.float32), np.asarray(scene.point_colors, np.float32), "point_cloud"
  views = Views.from_cameras(scene.cameras)
  near = float(np.min(np.asarray(scene.cameras.near)))
  rng = np.random.default_rng(seed)
  images = np.asarray(scene.images)
  if scene.depths is not None and np.any(scene.depths > 0):
    points, (v, r, c) = depth_points(views, np.asarray(scene.depths, np.float64), num_points, rng)
    colors, rule = images[v, r, c], "depth"
  elif _has_empty_pixels(scene.masks, threshold):
    points, (v, r, c) = visual_hull_points(views, np.asarray(scene.masks), num_points, rng, threshold=threshold, near=near)
    colors, rule = images[v, r, c], "visual_hull"
  else:
    points = shared_frusta_points(views, num_points, rng, near=near)
    colors, rule = _mean_colors(views, images, points, near), "shared_frusta"
  return points.astype(np.float32), np.clip(colors, 0.0, 1.0).astype(np.float32), rule

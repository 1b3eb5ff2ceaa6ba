"""Vectorized ray casting against a box-shaped room holding solid boxes, and rendering of posed views.

The room is the inside of an axis-aligned box (walls, floor and ceiling, object id 0); furniture is a
set of solid boxes (ids >= 1), axis-aligned or turned by a rotation (moving objects in track scenes).
All rays of a view (or of many views) go through numpy at once: the slab test per box costs a few
array operations, and scenes hold only a handful of boxes.

Surfaces carry a procedural texture (stripes, checkers, grids, dots in two colours) evaluated at the
hit's coordinates on that surface: world coordinates on the room's faces, box-local coordinates on a
box (so a moving box's texture moves with it). Shading is that colour times a Lambert term from one
fixed light direction plus ambient light.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jaxlab.spatial.scene import SceneError

PATTERNS = ("plain", "stripes", "checker", "grid", "dots")
_LIGHT_3 = np.array([0.45, 0.3, 0.84]) / np.linalg.norm([0.45, 0.3, 0.84])
_AMBIENT = 0.45
_TINY = 1e-12  # stands in for a zero direction component (the slab test divides by it)
_EPS = 1e-9  # hits closer than this to the ray's origin do not count (a ray leaving a surface)


@dataclasses.dataclass(frozen=True, eq=False)
class Appearance:
  """A two-colour procedural texture: `pattern` from PATTERNS, `scale` metres per pattern cell, stripes
  turned by `angle_deg` in the surface's plane. Colours are RGB in 0..1."""

  color_a_3: np.ndarray
  color_b_3: np.ndarray
  pattern: str = "plain"
  scale: float = 0.3
  angle_deg: float = 0.0

  def __post_init__(self):
    if self.pattern not in PATTERNS:
      raise SceneError(f"unknown texture pattern {self.pattern!r}; known: {', '.join(PATTERNS)}")
    if not self.scale > 0:
      raise SceneError(f"texture scale must be positive, got {self.scale}")
    for name in ("color_a_3", "color_b_3"):
      color = np.asarray(getattr(self, name), np.float64)
      if color.shape != (3,) or np.any(color < 0) or np.any(color > 1):
        raise SceneError(f"texture {name} must be 3 values in [0, 1], got {color}")
      object.__setattr__(self, name, color)

  def colors(self, a_n: np.ndarray, b_n: np.ndarray) -> np.ndarray:
    """RGB in 0..1 [N, 3] at surface coordinates (a, b) in metres."""
    theta = np.deg2rad(self.angle_deg)
    a = (np.cos(theta) * a_n + np.sin(theta) * b_n) / self.scale
    b = (np.cos(theta) * b_n - np.sin(theta) * a_n) / self.scale
    if self.pattern == "plain":
      second = np.zeros(a.shape, bool)
    elif self.pattern == "stripes":
      second = np.floor(a).astype(np.int64) % 2 == 1
    elif self.pattern == "checker":
      second = (np.floor(a).astype(np.int64) + np.floor(b).astype(np.int64)) % 2 == 1
    elif self.pattern == "grid":
      second = (a - np.floor(a) < 0.15) | (b - np.floor(b) < 0.15)
    else:  # dots
      second = (a - np.floor(a) - 0.5) ** 2 + (b - np.floor(b) - 0.5) ** 2 < 0.09
    return np.where(second[:, None], self.color_b_3, self.color_a_3)


@dataclasses.dataclass(frozen=True, eq=False)
class Room:
  """The inside of the axis-aligned box [min_3, max_3] (floor at min_3[2]).

  faces: 6 appearances in the order x-min wall, x-max wall, y-min wall, y-max wall, floor, ceiling.
  """

  min_3: np.ndarray
  max_3: np.ndarray
  faces: tuple[Appearance, ...]

  def __post_init__(self):
    lo, hi = np.asarray(self.min_3, np.float64), np.asarray(self.max_3, np.float64)
    if lo.shape != (3,) or hi.shape != (3,) or not np.all(hi > lo):
      raise SceneError(f"room bounds must be 3 values each with max > min, got {lo} and {hi}")
    if len(self.faces) != 6:
      raise SceneError(f"a room needs 6 face appearances, got {len(self.faces)}")
    object.__setattr__(self, "min_3", lo)
    object.__setattr__(self, "max_3", hi)
    object.__setattr__(self, "faces", tuple(self.faces))

  def contains(self, points_n3: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """bool [N]: points at least `margin` metres inside every wall, the floor and the ceiling."""
    points = np.asarray(points_n3, np.float64).reshape(-1, 3)
    return np.all((points >= self.min_3 + margin) & (points <= self.max_3 - margin), axis=1)


@dataclasses.dataclass(frozen=True, eq=False)
class Box:
  """A solid box: centre, full extent along its own axes, object id (>= 1) and texture.

  rotation_33 maps box-local axes to world axes (identity: axis-aligned, the extent is along world x, y, z).
  """

  center_3: np.ndarray
  extent_3: np.ndarray
  object_id: int
  appearance: Appearance
  rotation_33: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(3))

  def __post_init__(self):
    where = f"box {self.object_id}"
    if int(self.object_id) <= 0:
      raise SceneError(f"{where}: box ids start at 1 (0 is the room)")
    center = np.asarray(self.center_3, np.float64)
    extent = np.asarray(self.extent_3, np.float64)
    rotation = np.asarray(self.rotation_33, np.float64)
    if center.shape != (3,) or extent.shape != (3,) or np.any(extent <= 0):
      raise SceneError(f"{where}: needs a 3-vector centre and positive 3-vector extent, got {center}, {extent}")
    if rotation.shape != (3, 3) or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-6) \
        or np.linalg.det(rotation) < 0:
      raise SceneError(f"{where}: rotation must be a proper 3x3 rotation matrix")
    object.__setattr__(self, "object_id", int(self.object_id))
    object.__setattr__(self, "center_3", center)
    object.__setattr__(self, "extent_3", extent)
    object.__setattr__(self, "rotation_33", rotation)

  def to_local(self, points_n3: np.ndarray) -> np.ndarray:
    """World points [N, 3] in the box's frame (origin at its centre)."""
    return (np.asarray(points_n3, np.float64) - self.center_3) @ self.rotation_33

  def contains(self, points_n3: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """bool [N]: points inside the box grown by `margin` metres on every side."""
    return np.all(np.abs(self.to_local(points_n3)) <= self.extent_3 / 2 + margin, axis=1)


def _room_exit(origins_3n: np.ndarray, dirs_3n: np.ndarray, room: Room):
  """Where rays starting inside the room leave it: distance and the (inward) normal of the face.
  Arrays are [3, N] (one row per axis keeps the per-ray reductions fast)."""
  bound_3n = np.where(dirs_3n > 0, room.max_3[:, None], room.min_3[:, None])
  t_3n = (bound_3n - origins_3n) / dirs_3n
  axis_n = np.argmin(t_3n, axis=0)
  rows = np.arange(origins_3n.shape[1])
  normals_3n = np.zeros_like(origins_3n)
  normals_3n[axis_n, rows] = -np.sign(dirs_3n[axis_n, rows])
  return t_3n[axis_n, rows], normals_3n


def _box_entry(origins_3n: np.ndarray, dirs_3n: np.ndarray, box: Box):
  """Slab test in the box's frame: entry distance (inf on a miss) and the world normal of the entry face."""
  r = box.rotation_33
  o_3n = r.T @ (origins_3n - box.center_3[:, None])
  d_3n = r.T @ dirs_3n
  d_3n = np.where(np.abs(d_3n) < _TINY, _TINY, d_3n)
  half_31 = box.extent_3[:, None] / 2
  t1_3n, t2_3n = (-half_31 - o_3n) / d_3n, (half_31 - o_3n) / d_3n
  near_3n = np.minimum(t1_3n, t2_3n)
  far_3n = np.maximum(t1_3n, t2_3n)
  t_near_n = np.maximum(np.maximum(near_3n[0], near_3n[1]), near_3n[2])
  t_far_n = np.minimum(np.minimum(far_3n[0], far_3n[1]), far_3n[2])
  # A ray starting inside the box (t_near < 0) does not see it: boxes are solid from the outside.
  hit_n = (t_near_n <= t_far_n) & (t_near_n > _EPS)
  axis_n = np.argmax(near_3n, axis=0)
  rows = np.arange(o_3n.shape[1])
  local_normals_3n = np.zeros_like(o_3n)
  local_normals_3n[axis_n, rows] = -np.sign(d_3n[axis_n, rows])
  return np.where(hit_n, t_near_n, np.inf), r @ local_normals_3n


def cast_rays(origins_n3: np.ndarray, dirs_n3: np.ndarray, boxes: Sequence[Box], room: Room):
  """First hit of each ray: (depth_along_ray_n, ids_n, normals_n3, hits_n3).

  Rays start inside the room, so every ray hits something. depth_along_ray is in units of the
  direction's length (metres for unit directions; camera z for directions with camera z = 1).
  ids: int32, 0 for the room's surfaces, the box's object_id otherwise. normals: unit, facing the ray.
  """
  origins = np.asarray(origins_n3, np.float64)
  dirs = np.asarray(dirs_n3, np.float64)
  if origins.shape != dirs.shape or origins.ndim != 2 or origins.shape[1] != 3:
    raise SceneError(f"cast_rays needs origins and directions of equal shape [N, 3], got {origins.shape} "
                     f"and {dirs.shape}")
  if not np.all(np.isfinite(origins)) or not np.all(np.isfinite(dirs)):
    raise SceneError("cast_rays: origins or directions hold NaN or inf")
  if np.any(np.all(np.abs(dirs) < _TINY, axis=1)):
    raise SceneError("cast_rays: a ray direction is zero")
  origins_3n = np.ascontiguousarray(origins.T)
  dirs_3n = np.where(np.abs(dirs.T) < _TINY, _TINY, dirs.T)
  depth_n, normals_3n = _room_exit(origins_3n, dirs_3n, room)
  ids_n = np.zeros(len(origins), np.int32)
  for box in boxes:
    t_n, box_normals_3n = _box_entry(origins_3n, dirs_3n, box)
    closer_n = t_n < depth_n
    depth_n = np.where(closer_n, t_n, depth_n)
    ids_n[closer_n] = box.object_id
    normals_3n = np.where(closer_n, box_normals_3n, normals_3n)
  return depth_n, ids_n, normals_3n.T, origins + depth_n[:, None] * dirs


def _surface_coords(points_n3: np.ndarray, normals_n3: np.ndarray):
  """In-plane coordinates (a, b) of points on a face with the given axis-aligned normal: the two other
  axes, vertical last on walls so stripes at angle 0 run upright."""
  axis_n = np.argmax(np.abs(normals_n3), axis=1)
  first_n = np.where(axis_n == 0, 1, 0)
  second_n = np.where(axis_n == 2, 1, 2)
  rows = np.arange(len(points_n3))
  return points_n3[rows, first_n], points_n3[rows, second_n], axis_n


def _shade(hits_n3: np.ndarray, ids_n: np.ndarray, normals_n3: np.ndarray, boxes: Sequence[Box],
           room: Room) -> np.ndarray:
  """Texture colour times (ambient + Lambert) as uint8 [N, 3]."""
  colors_n3 = np.zeros_like(hits_n3)
  on_room = ids_n == 0
  if np.any(on_room):
    a, b, axis = _surface_coords(hits_n3[on_room], normals_n3[on_room])
    face = 2 * axis + (normals_n3[on_room][np.arange(len(axis)), axis] < 0)  # normal points away from its wall
    room_colors = np.zeros((len(a), 3))
    for index, appearance in enumerate(room.faces):
      sel = face == index
      if np.any(sel):
        room_colors[sel] = appearance.colors(a[sel], b[sel])
    colors_n3[on_room] = room_colors
  for box in boxes:
    sel = ids_n == box.object_id
    if np.any(sel):
      local = box.to_local(hits_n3[sel]) + box.extent_3 / 2  # texture anchored at a corner of the box
      a, b, axis = _surface_coords(local, normals_n3[sel] @ box.rotation_33)
      colors_n3[sel] = box.appearance.colors(a + 0.37 * axis, b)
  lambert_n = np.clip(normals_n3 @ _LIGHT_3, 0.0, None)
  shade_n = _AMBIENT + (1.0 - _AMBIENT) * lambert_n
  return np.clip(np.round(255.0 * colors_n3 * shade_n[:, None]), 0, 255).astype(np.uint8)


def pixel_rays(intrinsics_33: np.ndarray, cam_to_world_44: np.ndarray, height: int, width: int):
  """Origins and world directions [H*W, 3] through the pixel centres, scaled so that camera z = 1
  (distance along such a ray is the depth)."""
  k = np.asarray(intrinsics_33, np.float64)
  pose = np.asarray(cam_to_world_44, np.float64)
  v, u = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
  cam_n3 = np.stack([(u.ravel() - k[0, 2]) / k[0, 0], (v.ravel() - k[1, 2]) / k[1, 1],
                     np.ones(height * width)], axis=1)
  dirs_n3 = cam_n3 @ pose[:3, :3].T
  return np.broadcast_to(pose[:3, 3], dirs_n3.shape).copy(), dirs_n3


def render(intrinsics_33: np.ndarray, cam_to_world_44: np.ndarray, height: int, width: int,
           boxes: Sequence[Box], room: Room):
  """(rgb_hw3 uint8, depth_hw float32 camera z in metres, instances_hw int32) of one posed pinhole view."""
  origins_n3, dirs_n3 = pixel_rays(intrinsics_33, cam_to_world_44, height, width)
  depth_n, ids_n, normals_n3, hits_n3 = cast_rays(origins_n3, dirs_n3, boxes, room)
  rgb_n3 = _shade(hits_n3, ids_n, normals_n3, boxes, room)
  return (rgb_n3.reshape(height, width, 3), depth_n.reshape(height, width).astype(np.float32),
          ids_n.reshape(height, width))


def ray_visible(points_n3: np.ndarray, intrinsics_33: np.ndarray, cam_to_world_44: np.ndarray, height: int,
                width: int, boxes: Sequence[Box], room: Room, *, tolerance: float = 0.02) -> np.ndarray:
  """bool [N]: the point projects inside the image, lies in front of the camera, and the ray from the
  camera toward it first meets a surface no nearer than `tolerance` metres (camera z) before it."""
  points = np.asarray(points_n3, np.float64).reshape(-1, 3)
  k = np.asarray(intrinsics_33, np.float64)
  pose = np.asarray(cam_to_world_44, np.float64)
  cam_n3 = (points - pose[:3, 3]) @ pose[:3, :3]
  z_n = cam_n3[:, 2]
  visible_n = np.isfinite(z_n) & (z_n > _EPS)
  safe_z = np.where(visible_n, z_n, 1.0)
  u_n = k[0, 0] * cam_n3[:, 0] / safe_z + k[0, 2]
  v_n = k[1, 1] * cam_n3[:, 1] / safe_z + k[1, 2]
  visible_n &= (u_n >= 0) & (u_n < width) & (v_n >= 0) & (v_n < height)
  if not np.any(visible_n):
    return visible_n
  dirs_n3 = (points[visible_n] - pose[:3, 3]) / safe_z[visible_n, None]  # camera z = 1 per unit
  origins_n3 = np.broadcast_to(pose[:3, 3], dirs_n3.shape)
  depth_n = cast_rays(origins_n3, dirs_n3, boxes, room)[0]
  visible_n[visible_n] = depth_n >= z_n[visible_n] - tolerance
  return visible_n

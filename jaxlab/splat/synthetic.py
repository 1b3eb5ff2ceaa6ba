"""A procedural scene, ray cast analytically in NumPy, written as a Blender-format dataset.

The scene (world z up, Blender's convention) is a textured ground disc of radius 3 at
z = 0, three textured spheres resting on it, two textured boxes standing on it with random
yaw, and one cube floating above the centre at a random orientation. Textures are
scikit-image's bundled photographs (grey ones tinted), sampled bilinearly: the ground
tiles its photo with mirrored repeats, spheres use a spherical (longitude, latitude)
mapping with the photo mirrored twice around the equator (no seam), and each box face
shows the whole photo. Shading is Lambertian: one directional light plus ambient, with
albedos kept inside [0.1, 0.9] so no pixel is pure black or white. There are no shadows,
so every surface point has one colour from every view.

Cameras sit on a hemispherical band (elevation 15..60 degrees, distance 5.5) around
`LOOK_AT_TARGET`, placed along a golden-angle spiral; held-out test cameras sit on the
same spiral halfway between two consecutive training cameras. Each pixel averages
`supersample`**2 rays (a regular grid inside the pixel) for colour and coverage; its
depth is the camera-space z of the ray through the pixel centre (0 where that ray hits
nothing). Rays that hit nothing have alpha 0.

Output layout (NeRF-synthetic):

  transforms_train.json, transforms_test.json   camera_angle_x; frames with file_path
                                                ("./train/r_0", no extension) and the
                                                OpenGL camera-to-world transform_matrix
  train/r_<i>.png, test/r_<i>.png               RGBA, 8 bit, straight (not premultiplied)
  train/r_<i>_depth.npy, test/...               [H, W] float32 camera z, 0 = no hit
  points3d.ply                                  x y z float, red green blue uchar: points
                                                sampled uniformly by area on the surfaces
                                                seen by at least one training camera,
                                                coloured as the cameras see them (shaded)
  scene.json                                    the geometry and generation settings

`generate` writes a scene; `default_scene_dir` / `ensure_default_scene` keep one per
settings in the cache directory (`$JAXLAB_CACHE`, else `~/.cache/jaxlab`).
`python -m jaxlab.splat.synthetic --out DIR` is the command-line form.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import pathlib
import re
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxlab.files import atomic_open

log = logging.getLogger(__name__)

SCENE_VERSION = "synthetic_v1"
GROUND_HEIGHT = 0.0
GROUND_RADIUS = 3.0
GROUND_TILE_SIZE = 1.5  # metres covered by one copy of the ground photo
LOOK_AT_TARGET = (0.0, 0.0, 0.5)
WORLD_UP = (0.0, 0.0, 1.0)
CAMERA_DISTANCE = 5.5
CAMERA_ANGLE_X = 0.9  # radians, horizontal field of view
ELEVATION_RANGE_DEGREES = (15.0, 60.0)
LIGHT_DIRECTION = (0.45, 0.3, 0.84)  # towards the light; normalised on use
AMBIENT = 0.4
DIFFUSE = 0.6
ALBEDO_RANGE = (0.1, 0.9)

# name -> (skimage.data function, RGB tint for grey photos or None, texels per side).
# Sizes keep texels near one pixel at 128x128 views, so no view aliases the photos and
# views agree on what each surface looks like; the ground's coarse gravel is blotchy.
TEXTURES = types.MappingProxyType({
    "ground": ("gravel", (0.85, 0.72, 0.52), 32),
    "astronaut": ("astronaut", None, 64),
    "coffee": ("coffee", None, 64),
    "chelsea": ("chelsea", None, 64),
    "rocket": ("rocket", None, 64),
    "brick": ("brick", (0.9, 0.5, 0.4), 64),
    "grass": ("grass", (0.45, 0.8, 0.4), 64),
})

DEFAULT_SETTINGS = types.MappingProxyType({
    "num_train": 64,
    "num_test": 8,
    "width": 128,
    "height": 128,
    "seed": 0,
    "num_points": 10_000,
    "supersample": 3,
})

_GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))
_HIT_EPSILON = 1e-6
_NO_HIT = -1
# Files and folders `generate` writes; with overwrite only these are replaced.
_SCENE_ENTRIES = ("train", "test", "transforms_train.json", "transforms_test.json", "points3d.ply", "scene.json")
_SPLIT_DIRS = ("train", "test")
# The only files `generate` writes into a split folder; overwrite deletes nothing else.
_SPLIT_FILE_PATTERN = re.compile(r"r_\d+(\.png|_depth\.npy)")


# ----------------------------------------------------------------------------- scene


@dataclasses.dataclass(frozen=True)
class Sphere:
  """A textured sphere; `u_offset` turns its texture around the z axis (fraction of a turn)."""
  center: tuple[float, float, float]
  radius: float
  texture: str
  u_offset: float = 0.0


@dataclasses.dataclass(frozen=True)
class Box:
  """A textured box: local point p maps to world `rotation @ p + center`, |p_i| <= half_size_i."""
  center: tuple[float, float, float]
  half_size: tuple[float, float, float]
  rotation: tuple[tuple[float, float, float], ...]  # 3x3, columns are the box axes in world
  texture: str


@dataclasses.dataclass(frozen=True)
class Scene:
  """The ground disc (z = GROUND_HEIGHT, radius GROUND_RADIUS) plus spheres and boxes."""
  spheres: tuple[Sphere, ...]
  boxes: tuple[Box, ...]
  ground_texture: str = "ground"

  def to_json(self) -> dict[str, Any]:
    """A JSON-ready description with everything needed to recompute the geometry."""
    return {
        "up": list(WORLD_UP),
        "ground": {"height": GROUND_HEIGHT, "radius": GROUND_RADIUS, "tile_size": GROUND_TILE_SIZE,
                   "texture": self.ground_texture},
        "spheres": [dataclasses.asdict(s) for s in self.spheres],
        "boxes": [dataclasses.asdict(b) for b in self.boxes],
        "light": {"direction": list(_unit(np.asarray(LIGHT_DIRECTION))), "ambient": AMBIENT,
                  "diffuse": DIFFUSE},
        "look_at": list(LOOK_AT_TARGET),
        "camera_distance": CAMERA_DISTANCE,
        "textures": {name: {"skimage": source, "tint": tint, "size": size}
                     for name, (source, tint, size) in TEXTURES.items()},
    }


def _unit(v: np.ndarray) -> np.ndarray:
  return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _rotation_z(angle: float) -> np.ndarray:
  c, s = math.cos(angle), math.sin(angle)
  return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
  """A uniformly random rotation (QR of a Gaussian matrix with the sign fixed)."""
  q, r = np.linalg.qr(rng.standard_normal((3, 3)))
  q = q * np.sign(np.diag(r))
  if np.linalg.det(q) < 0:
    q[:, 0] = -q[:, 0]
  return q


def _as_tuple_33(m: np.ndarray) -> tuple[tuple[float, float, float], ...]:
  return tuple(tuple(float(x) for x in row) for row in m)


def build_scene(seed: int = 0) -> Scene:
  """The scene for `seed`: a fixed arrangement with seeded jitter of positions and rotations."""
  rng = np.random.default_rng([seed, 0])
  jitter = lambda: rng.uniform(-0.2, 0.2, size=2)
  spheres = []
  for (x, y), radius, texture in (((-1.2, 0.9), 0.7, "astronaut"), ((1.3, 1.1), 0.55, "coffee"),
                                  ((0.1, -1.6), 0.5, "chelsea")):
    dx, dy = jitter()
    spheres.append(Sphere(center=(x + dx, y + dy, GROUND_HEIGHT + radius), radius=radius, texture=texture,
                          u_offset=float(rng.uniform(0.0, 1.0))))
  boxes = []
  for (x, y), half, texture in (((1.35, -0.9), (0.45, 0.45, 0.45), "rocket"),
                                ((-1.45, -1.0), (0.35, 0.6, 0.3), "brick")):
    dx, dy = jitter()
    rotation = _rotation_z(float(rng.uniform(0.0, math.pi / 2)))
    boxes.append(Box(center=(x + dx, y + dy, GROUND_HEIGHT + half[2]), half_size=half,
                     rotation=_as_tuple_33(rotation), texture=texture))
  # A cube floating above the middle, turned every way, so some faces are seen obliquely.
  dx, dy = jitter()
  boxes.append(Box(center=(0.1 + dx, 0.2 + dy, GROUND_HEIGHT + 1.6), half_size=(0.32, 0.32, 0.32),
                   rotation=_as_tuple_33(_random_rotation(rng)), texture="grass"))
  return Scene(spheres=tuple(spheres), boxes=tuple(boxes))


# ----------------------------------------------------------------------------- textures


def load_textures() -> dict[str, np.ndarray]:
  """Albedo maps keyed by `TEXTURES` name: [size, size, 3] float64 in ALBEDO_RANGE.

  Photos come from scikit-image's bundled data (no download); grey ones are tinted.
  """
  import skimage.data  # noqa: PLC0415 - heavy, and only needed when rendering
  import skimage.transform  # noqa: PLC0415

  low, high = ALBEDO_RANGE
  textures = {}
  for name, (source, tint, size) in TEXTURES.items():
    photo = np.asarray(getattr(skimage.data, source)(), np.float64) / 255.0
    if photo.ndim == 2:
      photo = photo[..., None] * np.asarray(tint if tint is not None else (1.0, 1.0, 1.0))
    photo = photo[..., :3]
    resized = skimage.transform.resize(photo, (size, size), order=1, anti_aliasing=True)
    textures[name] = low + (high - low) * np.clip(resized, 0.0, 1.0)
  return textures


def _wrap_index(i: np.ndarray, n: int, mode: str) -> np.ndarray:
  if mode == "mirror":  # ... 0 1 .. n-1 n-1 .. 1 0 0 1 ...: repeats without seams
    i = np.mod(i, 2 * n)
    return np.where(i >= n, 2 * n - 1 - i, i)
  return np.clip(i, 0, n - 1)


def sample_texture(texture_hw3: np.ndarray, u: np.ndarray, v: np.ndarray, *, mode: str) -> np.ndarray:
  """Bilinear lookup at texture coordinates (u right, v down; [0, 1] spans the photo once).

  mode: "mirror" (repeats, flipped every other copy) or "clamp" (edge texels beyond [0, 1]).
  Returns [R, 3].
  """
  if mode not in ("mirror", "clamp"):
    raise ValueError(f"mode must be 'mirror' or 'clamp'; got {mode!r}")
  h, w, _ = texture_hw3.shape
  x = np.asarray(u) * w - 0.5
  y = np.asarray(v) * h - 0.5
  x0 = np.floor(x)
  y0 = np.floor(y)
  fx = (x - x0)[:, None]
  fy = (y - y0)[:, None]
  x0 = x0.astype(np.int64)
  y0 = y0.astype(np.int64)
  xa, xb = _wrap_index(x0, w, mode), _wrap_index(x0 + 1, w, mode)
  ya, yb = _wrap_index(y0, h, mode), _wrap_index(y0 + 1, h, mode)
  top = texture_hw3[ya, xa] * (1 - fx) + texture_hw3[ya, xb] * fx
  bottom = texture_hw3[yb, xa] * (1 - fx) + texture_hw3[yb, xb] * fx
  return top * (1 - fy) + bottom * fy


# ----------------------------------------------------------------------------- ray casting
#
# Rays are p(t) = origin + t * direction with directions of any length, t > _HIT_EPSILON;
# each intersector returns t [R] with +inf for a miss.


def _intersect_ground(origins_3: np.ndarray, dirs_r3: np.ndarray) -> np.ndarray:
  with np.errstate(divide="ignore", invalid="ignore"):
    t = (GROUND_HEIGHT - origins_3[..., 2]) / dirs_r3[:, 2]
  t = np.where(np.isfinite(t) & (t > _HIT_EPSILON), t, np.inf)
  finite_t = np.where(np.isfinite(t), t, 0.0)
  hit_x = origins_3[..., 0] + finite_t * dirs_r3[:, 0]
  hit_y = origins_3[..., 1] + finite_t * dirs_r3[:, 1]
  return np.where(hit_x**2 + hit_y**2 <= GROUND_RADIUS**2, t, np.inf)


def _rowwise_dot(a_r3: np.ndarray, b_r3: np.ndarray) -> np.ndarray:
  return np.einsum("ij,ij->i", a_r3, b_r3)


def _intersect_sphere(sphere: Sphere, origins_3: np.ndarray, dirs_r3: np.ndarray) -> np.ndarray:
  oc = origins_3 - np.asarray(sphere.center)
  a = _rowwise_dot(dirs_r3, dirs_r3)
  if oc.ndim == 1:  # one origin for all rays
    half_b = dirs_r3 @ oc
    c = oc @ oc - sphere.radius**2
  else:
    half_b = _rowwise_dot(oc, dirs_r3)
    c = _rowwise_dot(oc, oc) - sphere.radius**2
  disc = half_b**2 - a * c
  root = np.sqrt(np.maximum(disc, 0.0))
  near = (-half_b - root) / a
  far = (-half_b + root) / a
  t = np.where(near > _HIT_EPSILON, near, far)
  return np.where((disc >= 0) & (t > _HIT_EPSILON), t, np.inf)


def _intersect_box(box: Box, origins_3: np.ndarray, dirs_r3: np.ndarray) -> np.ndarray:
  """Slab test along each box axis."""
  rotation = np.asarray(box.rotation)
  relative = origins_3 - np.asarray(box.center)
  t_near = np.full(len(dirs_r3), -np.inf)
  t_far = np.full(len(dirs_r3), np.inf)
  for axis, half in enumerate(box.half_size):
    local_o = relative @ rotation[:, axis]
    local_d = dirs_r3 @ rotation[:, axis]
    # A ray parallel to the slab gives -inf..inf inside it and an empty range outside;
    # fmin/fmax skip the NaN of 0 * inf on the slab's boundary.
    with np.errstate(divide="ignore", invalid="ignore"):
      inv_d = 1.0 / local_d
      t1 = (-half - local_o) * inv_d
      t2 = (half - local_o) * inv_d
    t_near = np.fmax(t_near, np.fmin(t1, t2))
    t_far = np.fmin(t_far, np.fmax(t1, t2))
  t = np.where(t_near > _HIT_EPSILON, t_near, t_far)
  return np.where((t_near <= t_far) & (t > _HIT_EPSILON), t, np.inf)


def _sphere_normal_uv(sphere: Sphere, points_r3: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  normal = _unit(points_r3 - np.asarray(sphere.center))
  longitude = np.arctan2(normal[:, 1], normal[:, 0]) / (2 * np.pi) + 0.5 + sphere.u_offset
  latitude = np.arccos(np.clip(normal[:, 2], -1.0, 1.0)) / np.pi  # 0 at the top
  return normal, 2.0 * longitude, latitude


def _box_normal_uv(box: Box, points_r3: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  rotation = np.asarray(box.rotation)
  half = np.asarray(box.half_size)
  local = (points_r3 - np.asarray(box.center)) @ rotation
  relative = local / half
  axis = np.argmax(np.abs(relative), axis=1)
  rows = np.arange(len(points_r3))
  normal_local = np.zeros_like(local)
  normal_local[rows, axis] = np.sign(relative[rows, axis])
  # Side faces: u across, v down the local z axis (photos upright); top/bottom: x and y.
  u_axis = np.array([1, 0, 0])[axis]
  v_axis = np.array([2, 2, 1])[axis]
  u = 0.5 + 0.5 * relative[rows, u_axis]
  v = np.where(axis == 2, 0.5 + 0.5 * relative[rows, v_axis], 0.5 - 0.5 * relative[rows, v_axis])
  return normal_local @ rotation.T, u, v


def _ground_normal_uv(points_r3: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  normal = np.broadcast_to(np.asarray(WORLD_UP, np.float64), points_r3.shape)
  return normal, points_r3[:, 0] / GROUND_TILE_SIZE, -points_r3[:, 1] / GROUND_TILE_SIZE


def _surfaces(scene: Scene) -> list[tuple[str, Any]]:
  """(kind, object) for every surface, in the order of the hit ids `cast_rays` returns."""
  return ([("ground", None)] + [("sphere", s) for s in scene.spheres] + [("box", b) for b in scene.boxes])


def _nearest_hit(scene: Scene, origins_3: np.ndarray, dirs_r3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(t [R], surface id [R]) of the first surface each ray meets; id _NO_HIT and t inf for a miss.

  origins_3: [3] (shared by all rays) or [R, 3].
  """
  origins_3 = np.asarray(origins_3, np.float64)
  best_t = np.full(len(dirs_r3), np.inf)
  best_id = np.full(len(dirs_r3), _NO_HIT)
  for surface_id, (kind, obj) in enumerate(_surfaces(scene)):
    if kind == "ground":
      t = _intersect_ground(origins_3, dirs_r3)
    elif kind == "sphere":
      t = _intersect_sphere(obj, origins_3, dirs_r3)
    else:
      t = _intersect_box(obj, origins_3, dirs_r3)
    closer = t < best_t
    best_t = np.where(closer, t, best_t)
    best_id = np.where(closer, surface_id, best_id)
  return best_t, best_id


def shade_points(scene: Scene, textures: dict[str, np.ndarray], points_r3: np.ndarray,
                 surface_ids_r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(colour [R, 3] in (0, 1), world normal [R, 3]) at points lying on the given surfaces."""
  colors = np.zeros_like(points_r3)
  normals = np.zeros_like(points_r3)
  light = _unit(np.asarray(LIGHT_DIRECTION, np.float64))
  for surface_id, (kind, obj) in enumerate(_surfaces(scene)):
    mask = surface_ids_r == surface_id
    if not np.any(mask):
      continue
    points = points_r3[mask]
    if kind == "ground":
      normal, u, v = _ground_normal_uv(points)
      albedo = sample_texture(textures[scene.ground_texture], u, v, mode="mirror")
    elif kind == "sphere":
      normal, u, v = _sphere_normal_uv(obj, points)
      albedo = sample_texture(textures[obj.texture], u, v, mode="mirror")
    else:
      normal, u, v = _box_normal_uv(obj, points)
      albedo = sample_texture(textures[obj.texture], u, v, mode="clamp")
    lambert = np.maximum(normal @ light, 0.0)
    colors[mask] = albedo * (AMBIENT + DIFFUSE * lambert)[:, None]
    normals[mask] = normal
  return colors, normals


def cast_rays(scene: Scene, textures: dict[str, np.ndarray], origins_3: np.ndarray,
              dirs_r3: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(t [R], surface id [R], colour [R, 3]) of the first hit; t inf, id -1, colour 0 for a miss.

  origins_3: [3] (shared by all rays) or [R, 3]; directions need not be unit length.
  """
  dirs_r3 = np.asarray(dirs_r3, np.float64)
  t, surface_ids = _nearest_hit(scene, origins_3, dirs_r3)
  hit = surface_ids != _NO_HIT
  points = np.asarray(origins_3, np.float64) + np.where(hit, t, 0.0)[:, None] * dirs_r3
  colors, _ = shade_points(scene, textures, points, surface_ids)
  return t, surface_ids, colors


# ----------------------------------------------------------------------------- cameras


def focal_length(width: int, camera_angle_x: float = CAMERA_ANGLE_X) -> float:
  """Focal length in pixels (fx = fy) for the Blender convention: half width / tan(fov_x / 2)."""
  return 0.5 * width / math.tan(0.5 * camera_angle_x)


def _orbit_pose(t: float, count: int) -> np.ndarray:
  """OpenGL camera-to-world [4, 4] at spiral parameter t in [0, count)."""
  low, high = (math.sin(math.radians(e)) for e in ELEVATION_RANGE_DEGREES)
  # Uniform in sin(elevation) covers the band with equal area per camera.
  elevation = math.asin(low + (high - low) * (t + 0.5) / count)
  azimuth = t * _GOLDEN_ANGLE
  target = np.asarray(LOOK_AT_TARGET, np.float64)
  eye = target + CAMERA_DISTANCE * np.array(
      [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)])
  forward = _unit(target - eye)
  right = _unit(np.cross(forward, np.asarray(WORLD_UP)))
  up = np.cross(right, forward)
  pose = np.eye(4)
  pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, -forward, eye
  return pose


def camera_poses(num_train: int, num_test: int) -> tuple[np.ndarray, np.ndarray]:
  """OpenGL camera-to-world poses ([num_train, 4, 4], [num_test, 4, 4]).

  Training cameras sit at integer spiral parameters 0..num_train-1; each test camera at a
  half-integer one, i.e. halfway between two consecutive training cameras, spread evenly.
  """
  train = np.stack([_orbit_pose(float(i), num_train) for i in range(num_train)])
  last_gap = max(num_train - 2, 0)  # the gap between the last two training cameras
  test_t = [min(math.floor((j + 0.5) * num_train / num_test), last_gap) + 0.5 for j in range(num_test)]
  test = np.stack([_orbit_pose(t, num_train) for t in test_t])
  return train, test


def _opencv_rotation(pose_44: np.ndarray) -> np.ndarray:
  """Camera-to-world rotation with OpenCV axes (flip the OpenGL y and z columns)."""
  return pose_44[:3, :3] * np.array([1.0, -1.0, -1.0])


def render_view(scene: Scene, textures: dict[str, np.ndarray], pose_44: np.ndarray, *, width: int,
                height: int, camera_angle_x: float = CAMERA_ANGLE_X,
                supersample: int = 1) -> tuple[np.ndarray, np.ndarray]:
  """(rgba [H, W, 4] float in [0, 1], straight alpha; depth [H, W] camera z, 0 = no hit).

  Colour and alpha average supersample**2 rays on a regular grid inside each pixel; depth
  comes from the ray through the pixel centre. All rays of the view are cast at once.
  """
  focal = focal_length(width, camera_angle_x)
  rotation = _opencv_rotation(pose_44)
  eye = pose_44[:3, 3]
  offsets = (np.arange(supersample) + 0.5) / supersample
  dirs = _pixel_directions(width, height, focal, offsets) @ rotation.T
  _, surface_ids, colors = cast_rays(scene, textures, eye, dirs.reshape(-1, 3))
  hits = (surface_ids != _NO_HIT).reshape(height, supersample, width, supersample).sum(axis=(1, 3))
  color_sum = colors.reshape(height, supersample, width, supersample, 3).sum(axis=(1, 3))
  rgb = color_sum / np.maximum(hits, 1)[..., None]  # misses add 0 to color_sum
  alpha = hits / supersample**2

  centre_dirs = _pixel_directions(width, height, focal, np.array([0.5])) @ rotation.T
  t, _ = _nearest_hit(scene, eye, centre_dirs.reshape(-1, 3))
  depth = np.where(np.isfinite(t), t, 0.0).reshape(height, width)
  return np.concatenate([rgb, alpha[..., None]], axis=-1), depth


def _pixel_directions(width: int, height: int, focal: float, offsets_s: np.ndarray) -> np.ndarray:
  """[H, S, W, S, 3] OpenCV camera-space ray directions with z = 1 (so a hit's t is its depth).

  Pixel (col, row) is sampled at (col + offsets_s[i], row + offsets_s[j]) in pixel units.
  """
  cols = (np.arange(width)[:, None] + offsets_s[None, :] - 0.5 * width) / focal  # [W, S]
  rows = (np.arange(height)[:, None] + offsets_s[None, :] - 0.5 * height) / focal  # [H, S]
  return np.stack(np.broadcast_arrays(cols[None, None, :, :], rows[:, :, None, None], np.ones((1, 1, 1, 1))),
                  axis=-1)


# ----------------------------------------------------------------------------- point cloud


def _box_face_areas(box: Box) -> np.ndarray:
  """Areas of the faces -x, +x, -y, +y, -z, +z."""
  hx, hy, hz = box.half_size
  pair = np.array([4 * hy * hz, 4 * hx * hz, 4 * hx * hy])
  return np.repeat(pair, 2)


def _surface_areas(scene: Scene) -> np.ndarray:
  areas = [math.pi * GROUND_RADIUS**2]
  areas += [4 * math.pi * s.radius**2 for s in scene.spheres]
  areas += [float(_box_face_areas(b).sum()) for b in scene.boxes]
  return np.asarray(areas)


def _sample_surface(kind: str, obj: Any, count: int, rng: np.random.Generator) -> np.ndarray:
  """`count` points uniform by area on one surface: [count, 3]."""
  if kind == "ground":
    radius = GROUND_RADIUS * np.sqrt(rng.uniform(size=count))
    angle = rng.uniform(0.0, 2 * np.pi, size=count)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle), np.full(count, GROUND_HEIGHT)], axis=1)
  if kind == "sphere":
    return np.asarray(obj.center) + obj.radius * _unit(rng.standard_normal((count, 3)))
  areas = _box_face_areas(obj)
  face = rng.choice(6, size=count, p=areas / areas.sum())
  half = np.asarray(obj.half_size)
  local = rng.uniform(-1.0, 1.0, size=(count, 3)) * half
  axis = face // 2
  rows = np.arange(count)
  local[rows, axis] = np.where(face % 2 == 1, 1.0, -1.0) * half[axis]
  return local @ np.asarray(obj.rotation).T + np.asarray(obj.center)


def _visible_from_any(scene: Scene, points_p3: np.ndarray, normals_p3: np.ndarray, poses: np.ndarray, *,
                      width: int, height: int, camera_angle_x: float) -> np.ndarray:
  """[P] bool: the point is inside some camera's image, faces it, and nothing lies in between."""
  focal = focal_length(width, camera_angle_x)
  visible = np.zeros(len(points_p3), bool)
  for pose in poses:
    todo = np.flatnonzero(~visible)
    if not len(todo):
      break
    points = points_p3[todo]
    eye = pose[:3, 3]
    camera_xyz = (points - eye) @ _opencv_rotation(pose)
    z = camera_xyz[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
      col = camera_xyz[:, 0] / z * focal + 0.5 * width
      row = camera_xyz[:, 1] / z * focal + 0.5 * height
    in_image = (z > 0) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    to_eye = eye - points
    facing = np.sum(normals_p3[todo] * to_eye, axis=1) > 0
    candidates = in_image & facing
    # The eye is at t = 1 along `to_eye`; a hit before it hides the point.
    t, _ = _nearest_hit(scene, points[candidates], to_eye[candidates])
    seen = np.zeros(len(todo), bool)
    seen[candidates] = t >= 1.0
    visible[todo[seen]] = True
  return visible


def sample_visible_points(scene: Scene, textures: dict[str, np.ndarray], poses: np.ndarray, num_points: int,
                          rng: np.random.Generator, *, width: int, height: int,
                          camera_angle_x: float = CAMERA_ANGLE_X) -> tuple[np.ndarray, np.ndarray]:
  """(points [num_points, 3], colours [num_points, 3] in (0, 1)) uniform by area on the seen surfaces.

  Candidates are drawn uniformly over all surfaces and kept if some camera of `poses`
  (OpenGL camera-to-world) sees them, until `num_points` are kept; colours are shaded as
  the cameras see them.
  """
  surfaces = _surfaces(scene)
  areas = _surface_areas(scene)
  kept_points, kept_colors, kept = [], [], 0
  while kept < num_points:
    batch = 2 * (num_points - kept) + 64
    ids = rng.choice(len(surfaces), size=batch, p=areas / areas.sum())
    points = np.zeros((batch, 3))
    for surface_id, (kind, obj) in enumerate(surfaces):
      mask = ids == surface_id
      points[mask] = _sample_surface(kind, obj, int(mask.sum()), rng)
    colors, normals = shade_points(scene, textures, points, ids)
    seen = _visible_from_any(scene, points, normals, poses, width=width, height=height,
                             camera_angle_x=camera_angle_x)
    kept_points.append(points[seen])
    kept_colors.append(colors[seen])
    kept += int(seen.sum())
  return np.concatenate(kept_points)[:num_points], np.concatenate(kept_colors)[:num_points]


# ----------------------------------------------------------------------------- files


def _to_uint8(values: np.ndarray) -> np.ndarray:
  return np.clip(np.round(values * 255.0), 0, 255).astype(np.uint8)


def write_points_ply(path: str | os.PathLike, points_p3: np.ndarray, colors_p3: np.ndarray) -> None:
  """Binary PLY with one `vertex` element: x y z float32, red green blue uchar (colours in [0, 1]).

  `path` is replaced atomically (`jaxlab.files.atomic_open`): a failure leaves any previous file.
  """
  import plyfile  # noqa: PLC0415 - only needed when writing

  vertex = np.empty(len(points_p3), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                          ("red", "u1"), ("green", "u1"), ("blue", "u1")])
  for i, name in enumerate("xyz"):
    vertex[name] = points_p3[:, i]
  rgb = _to_uint8(colors_p3)
  for i, name in enumerate(("red", "green", "blue")):
    vertex[name] = rgb[:, i]
  ply = plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")], text=False, byte_order="<")
  with atomic_open(path, "wb") as stream:
    ply.write(stream)


def _write_split(root: pathlib.Path, split: str, poses: np.ndarray, scene: Scene,
                 textures: dict[str, np.ndarray], *, width: int, height: int, supersample: int) -> None:
  import imageio.v3 as iio  # noqa: PLC0415 - only needed when writing

  # `root` is generate's private staging folder, deleted on any failure: plain writes are safe here.
  (root / split).mkdir()
  frames = []
  started = time.monotonic()
  for i, pose in enumerate(poses):
    if i and i % 16 == 0:  # rendering takes a while: show life when output is not a terminal
      log.info("Rendered %d/%d %s views (%.0f s).", i, len(poses), split, time.monotonic() - started)
    rgba, depth = render_view(scene, textures, pose, width=width, height=height, supersample=supersample)
    stem = f"r_{i}"
    iio.imwrite(root / split / f"{stem}.png", _to_uint8(rgba))
    np.save(root / split / f"{stem}_depth.npy", depth.astype(np.float32))
    frames.append({"file_path": f"./{split}/{stem}", "rotation": 0.0,
                   "transform_matrix": [[float(x) for x in row] for row in pose]})
  with open(root / f"transforms_{split}.json", "w") as f:
    json.dump({"camera_angle_x": CAMERA_ANGLE_X, "frames": frames}, f, indent=2)


def _check_settings(settings: dict[str, Any]) -> None:
  minimum = {"num_train": 1, "num_test": 1, "width": 1, "height": 1, "num_points": 1, "supersample": 1}
  for name, low in minimum.items():
    value = settings[name]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
      raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
  if isinstance(settings["seed"], bool) or not isinstance(settings["seed"], (int, np.integer)):
    raise ValueError(f"seed must be an integer; got {settings['seed']!r}")


def _is_empty_dir(path: pathlib.Path) -> bool:
  return path.is_dir() and not any(path.iterdir())


def _foreign_entries(out: pathlib.Path) -> list[str]:
  """Paths that overwriting `out` would delete although `generate` never writes them.

  That is a scene entry of the wrong kind (a file where a folder belongs, or the reverse, or
  a symbolic link), or anything in train/ or test/ besides r_<i>.png and r_<i>_depth.npy.
  """
  foreign = []
  for name in _SCENE_ENTRIES:
    target = out / name
    if not (target.exists() or target.is_symlink()):
      continue
    if target.is_symlink() or target.is_dir() != (name in _SPLIT_DIRS):
      foreign.append(str(target))
    elif name in _SPLIT_DIRS:
      foreign += [str(p) for p in sorted(target.iterdir())
                  if p.is_symlink() or not p.is_file() or not _SPLIT_FILE_PATTERN.fullmatch(p.name)]
  return foreign


def _refuse_foreign_entries(out: pathlib.Path) -> None:
  foreign = _foreign_entries(out)
  if foreign:
    raise FileExistsError(
        f"cannot overwrite the scene in {out}: overwrite replaces only what a scene writes (train/ and test/"
        f" holding r_<i>.png and r_<i>_depth.npy, and {', '.join(n for n in _SCENE_ENTRIES if n not in _SPLIT_DIRS)}),"
        f" and would delete {', '.join(foreign)}, which is not a file the scene writes; move it away or choose"
        " another directory")


def _restore(moves: list[tuple[pathlib.Path, pathlib.Path]], backup: pathlib.Path) -> None:
  """Undoes `moves` (source, target) in reverse order; names `backup` if any entry cannot go back."""
  stuck = []
  for source, target in reversed(moves):
    try:
      os.rename(target, source)
    except OSError:
      stuck.append(str(target))
  if stuck:
    raise OSError(f"could not restore {', '.join(stuck)}; the previous scene's files are kept in {backup}")


def _replace_entries(staging: pathlib.Path, out: pathlib.Path) -> None:
  """Swaps the scene entries of `out` for those of `staging`; any failure puts the previous ones back.

  The previous entries are moved aside into a hidden folder beside `out` and deleted only after every
  new entry is in place. scene.json leaves first and arrives last, so a folder whose scene.json
  matches holds a whole scene even if the process dies half way (the previous files then stay in
  the hidden `.<name>.previous-*` folder).
  """
  backup = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.previous-", dir=out.parent))
  order = ("scene.json", *(name for name in _SCENE_ENTRIES if name != "scene.json"))
  moves = []
  try:
    for name in order:
      if (out / name).exists():
        os.rename(out / name, backup / name)
        moves.append((out / name, backup / name))
    for name in reversed(order):
      os.rename(staging / name, out / name)
      moves.append((staging / name, out / name))
  except BaseException:
    _restore(moves, backup)
    backup.rmdir()
    raise
  shutil.rmtree(backup)  # holds only the previous scene's own files (checked by _refuse_foreign_entries)


def _publish(staging: pathlib.Path, out: pathlib.Path, overwrite: bool) -> None:
  """Moves a finished scene from `staging` to `out`: one rename when `out` is new or empty."""
  if _is_empty_dir(out):
    out.rmdir()
  if not out.exists():
    try:
      os.rename(staging, out)
      return
    except OSError as error:  # someone else published first
      raise FileExistsError(f"{out} appeared while the scene was being generated") from error
  if not overwrite:
    raise FileExistsError(f"{out} appeared while the scene was being generated")
  _refuse_foreign_entries(out)  # again: files may have appeared while rendering
  _replace_entries(staging, out)


def generate(out_dir: str | os.PathLike, *, num_train: int = DEFAULT_SETTINGS["num_train"],
             num_test: int = DEFAULT_SETTINGS["num_test"], width: int = DEFAULT_SETTINGS["width"],
             height: int = DEFAULT_SETTINGS["height"], seed: int = DEFAULT_SETTINGS["seed"],
             num_points: int = DEFAULT_SETTINGS["num_points"],
             supersample: int = DEFAULT_SETTINGS["supersample"], overwrite: bool = False) -> pathlib.Path:
  """Renders the scene for `seed` into `out_dir` as a Blender-format dataset; returns the path.

  The whole dataset is written into a temporary folder beside `out_dir` and then renamed
  into place, so a crash never leaves a half-written scene. A non-empty `out_dir` is
  refused unless `overwrite`, which replaces only the scene's own files and folders, and
  refuses (deleting nothing) if those hold anything a scene does not write.
  Output is a deterministic function of the arguments.

  Raises:
    ValueError: a setting out of range.
    FileExistsError: `out_dir` is not empty (and not `overwrite`), is a file, or (with
      `overwrite`) its scene entries hold files a scene does not write.
  """
  settings = {"num_train": num_train, "num_test": num_test, "width": width, "height": height, "seed": seed,
              "num_points": num_points, "supersample": supersample}
  _check_settings(settings)
  out = pathlib.Path(out_dir).expanduser()
  if out.exists() and not out.is_dir():
    raise FileExistsError(f"{out} exists and is not a directory")
  if out.is_dir() and not _is_empty_dir(out) and not overwrite:
    raise FileExistsError(f"{out} is not empty; choose an empty or new directory, or pass overwrite=True"
                          " (--overwrite) to replace the scene files in it")
  if out.is_dir():
    _refuse_foreign_entries(out)  # before spending time on rendering
  out.parent.mkdir(parents=True, exist_ok=True)
  staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
  log.info("Generating the embedded scene (%d train and %d test views of %dx%d) into %s.", num_train, num_test, width,
           height, out)
  try:
    scene = build_scene(seed)
    textures = load_textures()
    train_poses, test_poses = camera_poses(num_train, num_test)
    for split, poses in (("train", train_poses), ("test", test_poses)):
      _write_split(staging, split, poses, scene, textures, width=width, height=height, supersample=supersample)
    points, colors = sample_visible_points(scene, textures, train_poses, num_points,
                                           np.random.default_rng([seed, 1]), width=width, height=height)
    write_points_ply(staging / "points3d.ply", points, colors)
    with open(staging / "scene.json", "w") as f:
      json.dump({"version": SCENE_VERSION, "settings": settings, "camera_angle_x": CAMERA_ANGLE_X,
                 "scene": scene.to_json()}, f, indent=2)
    _publish(staging, out, overwrite)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return out


# ----------------------------------------------------------------------------- cache


def _cache_root() -> pathlib.Path:
  return pathlib.Path(os.environ.get("JAXLAB_CACHE") or "~/.cache/jaxlab").expanduser()


def default_scene_dir(*, num_train: int = DEFAULT_SETTINGS["num_train"],
                      num_test: int = DEFAULT_SETTINGS["num_test"], width: int = DEFAULT_SETTINGS["width"],
                      height: int = DEFAULT_SETTINGS["height"], seed: int = DEFAULT_SETTINGS["seed"],
                      num_points: int = DEFAULT_SETTINGS["num_points"],
                      supersample: int = DEFAULT_SETTINGS["supersample"]) -> pathlib.Path:
  """The cache folder for a scene: (`$JAXLAB_CACHE` or ~/.cache/jaxlab)/synthetic_v1[-settings].

  With default settings the name is exactly `synthetic_v1`; otherwise the settings that
  differ from the defaults are appended (e.g. `synthetic_v1-height64-width64`), so scenes
  of different sizes never share a folder.
  """
  settings = {"num_train": num_train, "num_test": num_test, "width": width, "height": height, "seed": seed,
              "num_points": num_points, "supersample": supersample}
  _check_settings(settings)
  changed = [f"{name}{int(value)}" for name, value in sorted(settings.items())
             if int(value) != DEFAULT_SETTINGS[name]]
  return _cache_root() / "-".join([SCENE_VERSION, *changed])


def _recorded_settings(path: pathlib.Path) -> dict[str, Any] | None:
  try:
    with open(path / "scene.json") as f:
      record = json.load(f)
  except (OSError, ValueError):
    return None
  if not isinstance(record, dict) or record.get("version") != SCENE_VERSION:
    return None
  return record.get("settings")


def ensure_default_scene(**settings: Any) -> pathlib.Path:
  """The cached scene for `settings` (keywords of `default_scene_dir`), generated on first use.

  Generation is atomic (temporary folder, then rename), so concurrent callers and crashes
  leave either no folder or a complete one.

  Raises:
    FileExistsError: the cache folder exists but does not hold this scene (it is never
      deleted automatically; remove it to regenerate).
  """
  path = default_scene_dir(**settings)
  wanted = {**DEFAULT_SETTINGS, **{k: int(v) for k, v in settings.items()}}
  if not path.exists():
    try:
      generate(path, **wanted)
    except FileExistsError:
      pass  # another process finished first; check what it wrote below
  recorded = _recorded_settings(path)
  if recorded != wanted:
    raise FileExistsError(
        f"{path} exists but does not hold the {SCENE_VERSION} scene with settings {wanted}"
        f" (its scene.json records {recorded}); delete it to regenerate")
  return path


# ----------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
  """`python -m jaxlab.splat.synthetic --out DIR [...]`: writes the scene; returns the exit status."""
  parser = argparse.ArgumentParser(prog="python -m jaxlab.splat.synthetic", description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True, help="output directory (new or empty unless --overwrite)")
  for name, default in DEFAULT_SETTINGS.items():
    parser.add_argument(f"--{name}", type=int, default=default, help=f"default {default}")
  parser.add_argument("--overwrite", action="store_true", help="replace the scene files in a non-empty --out")
  args = parser.parse_args(argv)
  try:
    out = generate(args.out, overwrite=args.overwrite, **{name: getattr(args, name) for name in DEFAULT_SETTINGS})
  except (FileExistsError, ValueError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  print(f"wrote {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())

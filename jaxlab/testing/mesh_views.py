"""Blender-layout object datasets from textured triangle meshes, ray-cast in NumPy.

These datasets are made independently of jaxlab's renderer and of the embedded scene
(`jaxlab.splat.synthetic`, analytic spheres and boxes on a ground plane): each object is a
set of triangle meshes (boxes, cylinders, cones, tori, a torus knot, surfaces of
revolution) with procedural colour patterns, floating in empty space, seen from cameras on
a sphere around it. The layout is NeRF-synthetic's: `transforms_{train,test}.json` with
`camera_angle_x` and OpenGL camera-to-world matrices, RGBA PNGs with straight alpha (soft
at the silhouette by supersampling) and no point cloud, so a fit has to start from the
images alone.

  python -m jaxlab.testing.mesh_views OUT --object toy --width 64 --num-train 48

Only NumPy and imageio are used: no import from jaxlab.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import shutil
import tempfile
from collections.abc import Callable, Sequence

import numpy as np

CAMERA_ANGLE_X = 0.6911112070083618  # NeRF-synthetic's horizontal field of view
_LIGHTS = ((0.4, -0.5, 0.75, 0.75), (-0.6, 0.4, 0.2, 0.3))  # direction xyz, strength
_AMBIENT = 0.3


@dataclasses.dataclass(frozen=True)
class Part:
  """One triangle mesh: corners [F, 3, 3], corner normals [F, 3, 3], a colour pattern."""

  corners_f33: np.ndarray
  normals_f33: np.ndarray
  pattern: Callable[[np.ndarray], np.ndarray]  # world points [R, 3] -> RGB [R, 3] in [0, 1]

  @property
  def bounds(self) -> tuple[np.ndarray, np.ndarray]:
    flat = self.corners_f33.reshape(-1, 3)
    return flat.min(axis=0), flat.max(axis=0)


# ----------------------------------------------------------------------------- colour patterns


def checker(a_3, b_3, period: float) -> Callable[[np.ndarray], np.ndarray]:
  a_3, b_3 = np.asarray(a_3, float), np.asarray(b_3, float)

  def pattern(points_r3):
    cell = np.floor(points_r3 / period).astype(np.int64).sum(axis=-1) % 2
    return np.where(cell[:, None] == 0, a_3, b_3)
  return pattern


def stripes(a_3, b_3, period: float, axis: int = 2) -> Callable[[np.ndarray], np.ndarray]:
  a_3, b_3 = np.asarray(a_3, float), np.asarray(b_3, float)

  def pattern(points_r3):
    w = 0.5 + 0.5 * np.sin(2 * math.pi * points_r3[:, axis] / period)
    return a_3 * w[:, None] + b_3 * (1.0 - w[:, None])
  return pattern


def marble(base_3, vein_3, scale: float) -> Callable[[np.ndarray], np.ndarray]:
  base_3, vein_3 = np.asarray(base_3, float), np.asarray(vein_3, float)

  def pattern(points_r3):
    x, y, z = (points_r3[:, i] * scale for i in range(3))
    t = np.sin(x + 2.0 * np.sin(1.7 * y) + 1.3 * np.sin(2.3 * z + x)) ** 2
    return base_3 * t[:, None] + vein_3 * (1.0 - t[:, None])
  return pattern


# ----------------------------------------------------------------------------- meshes


def _grid_triangles(points_uv3: np.ndarray, normals_uv3: np.ndarray, wrap_u: bool, wrap_v: bool):
  """Two triangles per cell of a (u, v) grid of points, optionally closed in u and/or v."""
  nu, nv = points_uv3.shape[:2]
  us = np.arange(nu if wrap_u else nu - 1)
  vs = np.arange(nv if wrap_v else nv - 1)
  u0, v0 = np.meshgrid(us, vs, indexing="ij")
  u1, v1 = (u0 + 1) % nu, (v0 + 1) % nv
  quads = [(u0, v0), (u1, v0), (u1, v1), (u0, v1)]
  def pick(a):
    return np.stack([a[i, j] for i, j in quads], axis=2).reshape(-1, 4, 3)
  p, n = pick(points_uv3), pick(normals_uv3)
  tri = np.concatenate([p[:, [0, 1, 2]], p[:, [0, 2, 3]]])
  tri_n = np.concatenate([n[:, [0, 1, 2]], n[:, [0, 2, 3]]])
  return tri, tri_n


def _placed(corners_f33, normals_f33, rotation_33, center_3):
  rotation_33 = np.asarray(rotation_33, float)
  return corners_f33 @ rotation_33.T + np.asarray(center_3, float), normals_f33 @ rotation_33.T


def box(center_3, size_3, pattern, rotation_33=np.eye(3)) -> Part:
  half = 0.5 * np.asarray(size_3, float)
  faces = []
  for axis in range(3):
    for sign in (-1.0, 1.0):
      u, v = [a for a in range(3) if a != axis]
      quad = np.zeros((4, 3))
      quad[:, axis] = sign * half[axis]
      quad[:, u] = np.array([-1, 1, 1, -1]) * half[u]
      quad[:, v] = np.array([-1, -1, 1, 1]) * half[v]
      normal = np.zeros(3)
      normal[axis] = sign
      faces += [(quad[[0, 1, 2]], normal), (quad[[0, 2, 3]], normal)]
  corners = np.stack([f for f, _ in faces])
  normals = np.stack([np.broadcast_to(n, (3, 3)) for _, n in faces])
  return Part(*_placed(corners, normals, rotation_33, center_3), pattern)


def revolution(profile_k2: np.ndarray, center_3, pattern, segments: int = 48, rotation_33=np.eye(3),
               caps: bool = True) -> Part:
  """A surface of revolution about z: profile rows are (radius, height), bottom to top."""
  profile_k2 = np.asarray(profile_k2, float)
  angles = np.linspace(0, 2 * math.pi, segments, endpoint=False)
  radius, height = profile_k2[:, 0], profile_k2[:, 1]
  ring = np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # [S, 2]
  points = np.concatenate([radius[None, :, None] * ring[:, None, :],
                           np.broadcast_to(height[None, :, None], (segments, len(radius), 1))], axis=-1)
  # Smooth normals from the profile's tangent.
  dr, dh = np.gradient(radius), np.gradient(height)
  normal_rz = np.stack([dh, -dr], axis=-1)
  normal_rz /= np.linalg.norm(normal_rz, axis=-1, keepdims=True) + 1e-12
  normals = np.concatenate([normal_rz[None, :, :1] * ring[:, None, :],
                            np.broadcast_to(normal_rz[None, :, 1:], (segments, len(radius), 1))], axis=-1)
  corners, corner_normals = _grid_triangles(points, normals, wrap_u=True, wrap_v=False)
  if caps:
    for index, sign in ((0, -1.0), (-1, 1.0)):
      if radius[index] > 1e-9:
        rim = points[:, index]
        center = np.array([0.0, 0.0, height[index]])
        fan = np.stack([np.broadcast_to(center, rim.shape), rim, np.roll(rim, -1, axis=0)], axis=1)
        corners = np.concatenate([corners, fan])
        corner_normals = np.concatenate([corner_normals, np.broadcast_to([0.0, 0.0, sign], fan.shape)])
  return Part(*_placed(corners, corner_normals, rotation_33, center_3), pattern)


def cylinder(center_3, radius: float, height: float, pattern, **kwargs) -> Part:
  profile = [(radius, -0.5 * height), (radius, 0.5 * height)]
  return revolution(np.asarray(profile), center_3, pattern, **kwargs)


def tube(path_k3: np.ndarray, radius: float, pattern, sides: int = 12) -> Part:
  """A closed tube of circular section along a closed polyline."""
  tangent = np.roll(path_k3, -1, axis=0) - np.roll(path_k3, 1, axis=0)
  tangent /= np.linalg.norm(tangent, axis=-1, keepdims=True)
  helper = np.where(np.abs(tangent[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
  side = np.cross(tangent, helper)
  side /= np.linalg.norm(side, axis=-1, keepdims=True)
  other = np.cross(tangent, side)
  angles = np.linspace(0, 2 * math.pi, sides, endpoint=False)
  normals = np.cos(angles)[None, :, None] * side[:, None] + np.sin(angles)[None, :, None] * other[:, None]
  points = path_k3[:, None] + radius * normals
  corners, corner_normals = _grid_triangles(points, normals, wrap_u=True, wrap_v=True)
  return Part(corners, corner_normals, pattern)


def torus(center_3, major: float, minor: float, pattern, rotation_33=np.eye(3), segments: int = 40) -> Part:
  angles = np.linspace(0, 2 * math.pi, segments, endpoint=False)
  path = np.stack([major * np.cos(angles), major * np.sin(angles), np.zeros_like(angles)], axis=-1)
  part = tube(path, minor, pattern, sides=16)
  return Part(*_placed(part.corners_f33, part.normals_f33, rotation_33, center_3), pattern)


def torus_knot(center_3, scale: float, minor: float, pattern, p: int = 2, q: int = 3, segments: int = 160) -> Part:
  t = np.linspace(0, 2 * math.pi, segments, endpoint=False)
  r = 2.0 + np.cos(q * t)
  path = scale * np.stack([r * np.cos(p * t), r * np.sin(p * t), -np.sin(q * t)], axis=-1)
  part = tube(path, minor, pattern)
  return Part(part.corners_f33 + np.asarray(center_3, float), part.normals_f33, pattern)


def _rotation(axis_3, angle: float) -> np.ndarray:
  axis = np.asarray(axis_3, float) / np.linalg.norm(axis_3)
  k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
  return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def build_object(name: str) -> list[Part]:
  """The named object, about 3 units across, centred near the origin, z up."""
  if name == "toy":  # a small table with a ring, a cone and a striped vase on it
    wood = marble((0.55, 0.35, 0.18), (0.85, 0.65, 0.4), 6.0)
    parts = [box((0, 0, 0.1), (2.6, 1.8, 0.16), wood)]
    for x in (-1.1, 1.1):
      for y in (-0.75, 0.75):
        parts.append(cylinder((x, y, -0.7), 0.1, 1.45, stripes((0.25, 0.2, 0.6), (0.9, 0.9, 0.95), 0.3), segments=16))
    parts.append(torus((-0.6, 0.2, 0.75), 0.45, 0.14, checker((0.9, 0.2, 0.15), (0.95, 0.85, 0.2), 0.15),
                       rotation_33=_rotation((1, 0.3, 0), 1.2)))
    parts.append(revolution(np.array([(0.45, 0.0), (0.0, 0.9)]), (0.7, -0.3, 0.18),
                            checker((0.1, 0.6, 0.3), (0.95, 0.95, 0.9), 0.18), segments=32))
    vase = np.array([(0.0, 0.0), (0.25, 0.0), (0.32, 0.2), (0.2, 0.5), (0.12, 0.7), (0.18, 0.85)])
    parts.append(revolution(vase, (0.8, 0.5, 0.18), stripes((0.15, 0.35, 0.85), (0.95, 0.6, 0.2), 0.12), caps=False))
    return parts
  if name == "knot":  # a torus knot over a checkered slab
    return [
        torus_knot((0, 0, 0.35), 0.42, 0.2, marble((0.85, 0.25, 0.35), (0.98, 0.9, 0.6), 7.0)),
        box((0, 0, -0.9), (2.4, 2.4, 0.25), checker((0.15, 0.15, 0.2), (0.8, 0.82, 0.85), 0.3)),
    ]
  if name == "cube":  # one coloured cube (fast; for tests)
    return [box((0, 0, 0), (1.6, 1.6, 1.6), checker((0.9, 0.3, 0.1), (0.2, 0.4, 0.9), 0.4),
                rotation_33=_rotation((1, 1, 0), 0.6))]
  raise ValueError(f"unknown object {name!r}; choose one of {OBJECTS}")


OBJECTS = ("toy", "knot", "cube")


# ----------------------------------------------------------------------------- ray casting


def _ray_box_mask(origin_3, dirs_r3, low_3, high_3) -> np.ndarray:
  with np.errstate(divide="ignore", invalid="ignore"):
    inv = 1.0 / dirs_r3
    t0, t1 = (low_3 - origin_3) * inv, (high_3 - origin_3) * inv
  near = np.nanmax(np.minimum(t0, t1), axis=-1)
  far = np.nanmin(np.maximum(t0, t1), axis=-1)
  return far >= np.maximum(near, 0.0)


def _intersect_part(part: Part, origin_3, dirs_r3, chunk: int = 512):
  """Nearest hit of each ray with the part (Moller-Trumbore): (t [R], face [R], u [R], v [R])."""
  num_rays = len(dirs_r3)
  best_t = np.full(num_rays, np.inf)
  best_f = np.full(num_rays, -1)
  best_u, best_v = np.zeros(num_rays), np.zeros(num_rays)
  rays = np.nonzero(_ray_box_mask(origin_3, dirs_r3, *part.bounds))[0]
  if not len(rays):
    return best_t, best_f, best_u, best_v
  d = dirs_r3[rays]
  for start in range(0, len(part.corners_f33), chunk):
    tri = part.corners_f33[start:start + chunk]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]  # [T, 3]
    s = origin_3 - tri[:, 0]  # [T, 3]
    h = np.cross(d[:, None, :], e2[None, :, :])  # [R, T, 3]
    a = np.einsum("rtk,tk->rt", h, e1)
    with np.errstate(divide="ignore", invalid="ignore"):
      f = 1.0 / a
      u = f * np.einsum("rtk,tk->rt", h, s)
      q = np.cross(s, e1)  # [T, 3]
      v = f * np.einsum("rk,tk->rt", d, q)
      t = f * np.sum(q * e2, axis=-1)[None, :]
      ok = (np.abs(a) > 1e-12) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 1e-6)
    t = np.where(ok, t, np.inf)
    j = np.argmin(t, axis=1)
    tj = t[np.arange(len(rays)), j]
    better = tj < best_t[rays]
    idx = rays[better]
    best_t[idx] = tj[better]
    best_f[idx] = start + j[better]
    best_u[idx] = u[better, j[better]]
    best_v[idx] = v[better, j[better]]
  return best_t, best_f, best_u, best_v


def cast(parts: Sequence[Part], origin_3, dirs_r3) -> tuple[np.ndarray, np.ndarray]:
  """(rgb [R, 3], hit [R] bool) of the nearest surface along each ray, Lambert-shaded."""
  origin_3 = np.asarray(origin_3, float)
  t_all = np.full(len(dirs_r3), np.inf)
  rgb = np.zeros((len(dirs_r3), 3))
  for part in parts:
    t, face, u, v = _intersect_part(part, origin_3, dirs_r3)
    hit = t < t_all
    if not hit.any():
      continue
    t_all[hit] = t[hit]
    points = origin_3 + t[hit, None] * dirs_r3[hit]
    n = part.normals_f33[face[hit]]
    normal = (1 - u[hit] - v[hit])[:, None] * n[:, 0] + u[hit, None] * n[:, 1] + v[hit, None] * n[:, 2]
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-12
    facing = np.sum(normal * dirs_r3[hit], axis=-1, keepdims=True)
    normal = np.where(facing > 0, -normal, normal)  # two-sided
    light = np.full(len(points), _AMBIENT)
    for lx, ly, lz, strength in _LIGHTS:
      direction = np.array([lx, ly, lz]) / math.sqrt(lx * lx + ly * ly + lz * lz)
      light += strength * np.maximum(normal @ direction, 0.0)
    rgb[hit] = np.clip(part.pattern(points) * light[:, None], 0.0, 1.0)
  return rgb, np.isfinite(t_all)


# ----------------------------------------------------------------------------- cameras and files


def sphere_poses(count: int, radius: float, seed: int, *, min_z: float = -0.3) -> np.ndarray:
  """OpenGL camera-to-world [count, 4, 4] looking at the origin from random directions (z up)."""
  rng = np.random.default_rng(seed)
  poses = []
  while len(poses) < count:
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    if direction[2] < min_z or abs(direction[2]) > 0.97:
      continue
    eye = radius * direction
    back = direction  # OpenGL cameras look down -z
    right = np.cross([0.0, 0.0, 1.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, back, eye
    poses.append(pose)
  return np.stack(poses)


def render_rgba(parts: Sequence[Part], pose_44: np.ndarray, width: int, height: int, *, supersample: int = 3,
                camera_angle_x: float = CAMERA_ANGLE_X) -> np.ndarray:
  """[H, W, 4] float RGBA in [0, 1], straight alpha, averaged over supersample**2 rays per pixel."""
  focal = 0.5 * width / math.tan(0.5 * camera_angle_x)
  offsets = (np.arange(supersample) + 0.5) / supersample
  xs = (np.arange(width)[:, None] + offsets[None] - 0.5 * width) / focal  # [W, S]
  ys = (np.arange(height)[:, None] + offsets[None] - 0.5 * height) / focal  # [H, S]
  # OpenGL camera axes: x right, y up, z backward; image rows go down.
  dirs = np.stack(np.broadcast_arrays(xs[None, None, :, :], -ys[:, :, None, None], -np.ones((1, 1, 1, 1))), axis=-1)
  dirs = dirs.reshape(-1, 3) @ pose_44[:3, :3].T
  dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
  rgb, hit = cast(parts, pose_44[:3, 3], dirs)
  rgb = rgb.reshape(height, supersample, width, supersample, 3).sum(axis=(1, 3))
  hits = hit.reshape(height, supersample, width, supersample).sum(axis=(1, 3))
  color = rgb / np.maximum(hits, 1)[..., None]
  return np.concatenate([color, (hits / supersample**2)[..., None]], axis=-1)


def write_dataset(out_dir: str | os.PathLike, *, object_name: str = "toy", width: int = 64, height: int | None = None,
                  num_train: int = 48, num_test: int = 8, radius: float = 5.5, seed: int = 0,
                  supersample: int = 3) -> pathlib.Path:
  """Writes a Blender-layout dataset of `object_name` to `out_dir` (which must not exist)."""
  import imageio.v3 as iio  # noqa: PLC0415

  out = pathlib.Path(out_dir)
  if out.exists():
    raise FileExistsError(f"{out} exists; write_dataset makes a new folder")
  out.parent.mkdir(parents=True, exist_ok=True)
  parts = build_object(object_name)
  height = height or width
  splits = {"train": sphere_poses(num_train, radius, seed), "test": sphere_poses(num_test, radius, seed + 1000)}
  staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
  try:  # written beside the target and renamed at the end: a crash leaves no half dataset under `out`
    for split, poses in splits.items():
      (staging / split).mkdir()
      frames = []
      for i, pose in enumerate(poses):
        rgba = render_rgba(parts, pose, width, height, supersample=supersample)
        iio.imwrite(staging / split / f"r_{i}.png", np.round(rgba * 255).astype(np.uint8))
        frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": pose.tolist()})
      meta = {"camera_angle_x": CAMERA_ANGLE_X, "frames": frames}
      (staging / f"transforms_{split}.json").write_text(json.dumps(meta, indent=1))
    os.rename(staging, out)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return out


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("out")
  parser.add_argument("--object", default="toy", choices=OBJECTS)
  parser.add_argument("--width", type=int, default=64)
  parser.add_argument("--num-train", type=int, default=48)
  parser.add_argument("--num-test", type=int, default=8)
  parser.add_argument("--radius", type=float, default=5.5)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  write_dataset(args.out, object_name=args.object, width=args.width, num_train=args.num_train, num_test=args.num_test,
                radius=args.radius, seed=args.seed)
  print(args.out)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())

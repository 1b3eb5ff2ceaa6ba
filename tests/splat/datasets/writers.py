"""Tiny datasets written for the loader tests, from the formats' definitions.

Poses are built from camera basis vectors (OpenCV: right, down, forward; OpenGL: right,
up, backward) rather than by converting one convention into the other, so the tests do
not share the loaders' conversion code. Every view sees the world point `POINT` at a
known pixel, computed here from the pinhole model, and its image has a red marker there.
COLMAP files are written with `struct` from the format specification.
"""

import dataclasses
import json
import math
import pathlib
import struct

import imageio.v3 as iio
import numpy as np
import plyfile
from scipy.spatial.transform import Rotation

WIDTH, HEIGHT = 8, 6
POINT = np.array([0.1, -0.2, 0.3])
MARKER_RGB = (255, 0, 0)
WORLD_UP = np.array([0.0, 0.0, 1.0])


@dataclasses.dataclass(frozen=True)
class View:
  """One written view: pose, intrinsics, where POINT lands, and its RGBA pixels."""

  eye: np.ndarray
  right: np.ndarray
  down: np.ndarray
  forward: np.ndarray
  fx: float
  fy: float
  cx: float
  cy: float
  pixel_uv: tuple[float, float]  # continuous (column, row) of POINT; pixel centres at +0.5
  rgba: np.ndarray  # [HEIGHT, WIDTH, 4] uint8

  @property
  def marker_row_col(self) -> tuple[int, int]:
    return int(self.pixel_uv[1]), int(self.pixel_uv[0])

  def opencv_camera_to_world(self) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = np.stack([self.right, self.down, self.forward], axis=-1)
    pose[:3, 3] = self.eye
    return pose

  def opengl_camera_to_world(self) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = np.stack([self.right, -self.down, -self.forward], axis=-1)
    pose[:3, 3] = self.eye
    return pose

  def world_to_camera_rotation_translation(self) -> tuple[np.ndarray, np.ndarray]:
    rotation = np.stack([self.right, self.down, self.forward])  # rows: camera axes in world coords
    return rotation, -rotation @ self.eye


def make_view(index: int, *, fx: float, fy: float, cx: float, cy: float, alpha: bool = True) -> View:
  """A camera on a circle around POINT, aimed slightly off it so that pixels differ per view."""
  angle = 0.7 + 1.1 * index
  eye = POINT + np.array([3.0 * math.cos(angle), 3.0 * math.sin(angle), 0.8 + 0.1 * index])
  target = POINT + np.array([0.5 * (index % 3 - 1), 0.4 * (index % 2 - 0.5), 0.3 * (index % 3 - 1)])
  forward = (target - eye) / np.linalg.norm(target - eye)
  right = np.cross(forward, WORLD_UP)
  right /= np.linalg.norm(right)
  down = np.cross(forward, right)
  offset = POINT - eye
  x, y, z = offset @ right, offset @ down, offset @ forward
  u, v = fx * x / z + cx, fy * y / z + cy
  assert 0 <= u < WIDTH and 0 <= v < HEIGHT, (u, v)
  rgba = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
  rgba[..., :3] = (20 * index, 100, 200 - 20 * index)
  rgba[..., 3] = 255
  if alpha:
    rgba[0, :, 3] = 0  # a transparent top row
    rgba[1, 0, 3] = 128  # one half-transparent pixel
  rgba[int(v), int(u)] = (*MARKER_RGB, 255)
  return View(eye, right, down, forward, fx, fy, cx, cy, (u, v), rgba)


def write_image(path: pathlib.Path, rgba: np.ndarray, *, alpha: bool = True) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  iio.imwrite(path, rgba if alpha else rgba[..., :3])


def write_json(path: pathlib.Path, content) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(content, indent=1))


def write_points_ply(path: pathlib.Path, points_p3: np.ndarray, colors_p3_uint8: np.ndarray) -> None:
  vertex = np.empty(len(points_p3), [(n, "f4") for n in "xyz"] + [(n, "u1") for n in ("red", "green", "blue")])
  for i, n in enumerate("xyz"):
    vertex[n] = points_p3[:, i]
  for i, n in enumerate(("red", "green", "blue")):
    vertex[n] = colors_p3_uint8[:, i]
  plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")]).write(str(path))


def blender_focal(angle_x: float) -> float:
  return 0.5 * WIDTH / math.tan(0.5 * angle_x)


BLENDER_ANGLE_X = 1.2


def write_blender(root: pathlib.Path, splits: dict[str, int], *, start: int = 0) -> dict[str, list[View]]:
  """Blender dataset with `splits[name]` views per split; returns the views per split."""
  focal = blender_focal(BLENDER_ANGLE_X)
  written, index = {}, start
  for split, count in splits.items():
    frames, views = [], []
    for _ in range(count):
      view = make_view(index, fx=focal, fy=focal, cx=WIDTH / 2, cy=HEIGHT / 2)
      write_image(root / split / f"r_{index}.png", view.rgba)
      frames.append({"file_path": f"./{split}/r_{index}", "rotation": 0.0,
                     "transform_matrix": view.opengl_camera_to_world().tolist()})
      views.append(view)
      index += 1
    write_json(root / f"transforms_{split}.json", {"camera_angle_x": BLENDER_ANGLE_X, "frames": frames})
    written[split] = views
  return written


# ----------------------------------------------------------------------------- COLMAP

# (camera id, model name, model id, params builder from (fx, fy, cx, cy)).
COLMAP_CAMERAS = (
    (1, "PINHOLE", 1, lambda fx, fy, cx, cy: (fx, fy, cx, cy)),
    (7, "SIMPLE_RADIAL", 2, lambda fx, fy, cx, cy: (fx, cx, cy, 0.0)),
)
COLMAP_INTRINSICS = {1: (7.0, 6.5, 3.7, 3.2), 7: (5.5, 5.5, 4.2, 2.9)}  # SIMPLE_RADIAL: fx = fy


@dataclasses.dataclass(frozen=True)
class ColmapImageSpec:
  image_id: int
  camera_id: int
  name: str
  qvec: tuple[float, float, float, float]
  tvec: tuple[float, float, float]
  view: View


def colmap_images(num_images: int) -> list[ColmapImageSpec]:
  """Images alternating between the two cameras, with ids and names out of name order."""
  specs = []
  for i in range(num_images):
    camera_id = COLMAP_CAMERAS[i % 2][0]
    fx, fy, cx, cy = COLMAP_INTRINSICS[camera_id]
    view = make_view(i, fx=fx, fy=fy, cx=cx, cy=cy, alpha=False)
    rotation, translation = view.world_to_camera_rotation_translation()
    x, y, z, w = Rotation.from_matrix(rotation).as_quat()  # scipy is scalar-last
    specs.append(ColmapImageSpec(
        image_id=100 - 3 * i, camera_id=camera_id, name=f"img_{num_images - 1 - i:02d}.png",
        qvec=(w, x, y, z), tvec=tuple(translation), view=view))
  return specs


COLMAP_POINTS = (  # (id, xyz, rgb, error, track)
    (5, POINT, (255, 0, 0), 0.5, ((100, 0), (97, 3))),
    (9000000000, np.array([1.0, 2.0, -0.5]), (0, 128, 255), 1.25, ()),
)


def write_colmap_images_folder(root: pathlib.Path, specs: list[ColmapImageSpec], folder: str = "images") -> None:
  for spec in specs:
    write_image(root / folder / spec.name, spec.view.rgba, alpha=False)


def write_colmap_text(model_dir: pathlib.Path, specs: list[ColmapImageSpec], *, cameras=COLMAP_CAMERAS) -> None:
  model_dir.mkdir(parents=True, exist_ok=True)
  lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
  for camera_id, name, _, params in cameras:
    values = params(*COLMAP_INTRINSICS.get(camera_id, (5.0, 5.0, 4.0, 3.0)))
    lines.append(" ".join([str(camera_id), name, str(WIDTH), str(HEIGHT), *(repr(float(p)) for p in values)]))
  (model_dir / "cameras.txt").write_text("\n".join(lines) + "\n")
  lines = ["# Image list with two lines of data per image:", "# Number of images: %d" % len(specs)]
  for i, spec in enumerate(specs):
    lines.append(" ".join(str(v) for v in (spec.image_id, *spec.qvec, *spec.tvec, spec.camera_id, spec.name)))
    lines.append("" if i % 2 else "1.5 2.5 5 3.0 1.0 -1")  # an empty points line is valid
  (model_dir / "images.txt").write_text("\n".join(lines) + "\n")
  lines = ["# 3D point list with one line of data per point:"]
  for point_id, xyz, rgb, error, track in COLMAP_POINTS:
    lines.append(" ".join(str(v) for v in (point_id, *xyz, *rgb, error, *(x for pair in track for x in pair))))
  (model_dir / "points3D.txt").write_text("\n".join(lines) + "\n")


def write_colmap_binary(model_dir: pathlib.Path, specs: list[ColmapImageSpec], *, cameras=COLMAP_CAMERAS) -> None:
  model_dir.mkdir(parents=True, exist_ok=True)
  data = struct.pack("<Q", len(cameras))
  for camera_id, _, model_id, params in cameras:
    values = params(*COLMAP_INTRINSICS.get(camera_id, (5.0, 5.0, 4.0, 3.0)))
    data += struct.pack("<iiQQ", camera_id, model_id, WIDTH, HEIGHT) + struct.pack(f"<{len(values)}d", *values)
  (model_dir / "cameras.bin").write_bytes(data)
  data = struct.pack("<Q", len(specs))
  for i, spec in enumerate(specs):
    data += struct.pack("<i", spec.image_id) + struct.pack("<4d", *spec.qvec) + struct.pack("<3d", *spec.tvec)
    data += struct.pack("<i", spec.camera_id) + spec.name.encode() + b"\x00"
    points2d = [] if i % 2 else [(1.5, 2.5, 5), (3.0, 1.0, -1)]
    data += struct.pack("<Q", len(points2d)) + b"".join(struct.pack("<ddq", *p) for p in points2d)
  (model_dir / "images.bin").write_bytes(data)
  data = struct.pack("<Q", len(COLMAP_POINTS))
  for point_id, xyz, rgb, error, track in COLMAP_POINTS:
    data += struct.pack("<Q", point_id) + struct.pack("<3d", *xyz) + struct.pack("<3B", *rgb)
    data += struct.pack("<d", error) + struct.pack("<Q", len(track))
    data += b"".join(struct.pack("<ii", *pair) for pair in track)
  (model_dir / "points3D.bin").write_bytes(data)


# ----------------------------------------------------------------------------- checks


def projected_pixel(camera, point_3: np.ndarray) -> np.ndarray:
  """(column, row) where `jaxlab.splat.project` puts a tiny Gaussian at `point_3` in one camera."""
  import jax
  import jax.numpy as jnp

  from jaxlab.splat import Gaussians, project

  gaussians = Gaussians(
      means=jnp.asarray([point_3], jnp.float32), log_scales=jnp.full((1, 3), -6.0), quats=jnp.asarray([[1.0, 0, 0, 0]]),
      opacity_logits=jnp.zeros((1,)), sh=jnp.zeros((1, 1, 3)), active=jnp.ones((1,), bool))
  projected = jax.jit(project)(gaussians, camera)  # one compile per image size, not per call
  assert int(projected.radii[0]) > 0, "the point was culled"
  return np.asarray(projected.means2d[0], np.float64)


def matrix_pixel(camera, point_3: np.ndarray) -> np.ndarray:
  """(column, row) of `point_3` from one camera's matrices, in float64."""
  x, y, z, _ = np.asarray(camera.world_to_camera, np.float64) @ np.append(point_3, 1.0)
  assert z > 0, "the point is behind the camera"
  return np.array([float(camera.fx) * x / z + float(camera.cx), float(camera.fy) * y / z + float(camera.cy)])


# ----------------------------------------------------------------------------- poses that are no camera pose


def _sheared(pose_44: np.ndarray) -> np.ndarray:
  pose_44 = pose_44.copy()
  pose_44[:3, :3] = pose_44[:3, :3] @ np.array([[1.0, 0.2, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
  return pose_44


def _scaled(pose_44: np.ndarray) -> np.ndarray:
  pose_44 = pose_44.copy()
  pose_44[:3, :3] *= 2.0
  return pose_44


def _reflected(pose_44: np.ndarray) -> np.ndarray:
  pose_44 = pose_44.copy()
  pose_44[:3, 0] *= -1.0
  return pose_44


def _projective(pose_44: np.ndarray) -> np.ndarray:
  pose_44 = pose_44.copy()
  pose_44[3, 2] = 0.5
  return pose_44


# name -> (edit of a rigid 4x4 camera-to-world pose, what the refusal must say about it).
NON_RIGID_POSES = {
    "scaled": (_scaled, r"a rotation scaled by 2\b"),
    "sheared": (_sheared, r"not orthonormal"),
    "reflected": (_reflected, r"a reflection \(determinant -1\)"),
    "projective": (_projective, r"last row is \[0\.0, 0\.0, 0\.5, 1\.0\]"),
}


def nearly_rigid(pose_44: np.ndarray) -> np.ndarray:
  """`pose_44` with its rotation off by 1e-6 per entry, as poses written in float32 or 6 decimals are."""
  return pose_44 + np.pad(np.full((3, 3), 1e-6), ((0, 1), (0, 1)))

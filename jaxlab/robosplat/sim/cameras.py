"""Cameras of the simulated tabletop and renders with pybullet's TinyRenderer.

A `CameraSpec` is an OpenCV camera-to-world pose (x right, y down, z forward) with a
horizontal field of view and an image size; square pixels and the principal point at the
image centre, as `jaxlab.splat.Camera.from_fov` builds them. pybullet wants an OpenGL view
matrix (y up, z backward) and projection, both column-major: `_view_matrix` flips the
camera's y and z axes and inverts, `_projection_matrix` is the OpenGL frustum of the same
pinhole, so a world point lands on the pixel `CameraSpec.project` predicts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from jaxlab.robosplat.sim.world import Light, World

NEAR = 0.05
FAR = 20.0


@dataclasses.dataclass(frozen=True, eq=False)
class CameraSpec:
  """A pinhole camera: OpenCV camera-to-world pose, horizontal fov (rad), size in pixels."""

  name: str
  c2w_44: np.ndarray
  fov_x: float
  width: int = 64
  height: int = 64

  def __post_init__(self):
    c2w = np.asarray(self.c2w_44, np.float64)
    if c2w.shape != (4, 4) or not np.all(np.isfinite(c2w)):
      raise ValueError(f"camera {self.name!r}: c2w_44 must be a finite 4x4; got shape {c2w.shape}")
    if not np.allclose(c2w[:3, :3].T @ c2w[:3, :3], np.eye(3), atol=1e-5):
      raise ValueError(f"camera {self.name!r}: c2w_44 rotation is not orthonormal")
    if not 0.0 < self.fov_x < math.pi:
      raise ValueError(f"camera {self.name!r}: fov_x must be in (0, pi) radians; got {self.fov_x}")
    if int(self.width) < 1 or int(self.height) < 1:
      raise ValueError(f"camera {self.name!r}: width and height must be positive; got {self.width}x{self.height}")
    object.__setattr__(self, "c2w_44", c2w)

  @classmethod
  def looking_at(cls, name: str, eye_3: Sequence[float], target_3: Sequence[float], *, fov_x: float,
                 width: int = 64, height: int = 64, up_3: Sequence[float] = (0.0, 0.0, 1.0),
                 roll: float = 0.0) -> CameraSpec:
    """A camera at `eye_3` looking at `target_3`, image up along `up_3`, rolled by `roll` (rad)."""
    return cls(name, look_at_c2w(eye_3, target_3, up_3, roll), fov_x, width, height)

  @property
  def focal(self) -> float:
    """fx = fy in pixels."""
    return 0.5 * self.width / math.tan(0.5 * self.fov_x)

  @property
  def fov_y(self) -> float:
    return 2.0 * math.atan(math.tan(0.5 * self.fov_x) * self.height / self.width)

  @property
  def eye(self) -> np.ndarray:
    return self.c2w_44[:3, 3].copy()

  def resized(self, width: int, height: int | None = None) -> CameraSpec:
    """The same camera at another resolution (fov_x kept)."""
    return dataclasses.replace(self, width=int(width), height=int(width if height is None else height))

  def renamed(self, name: str) -> CameraSpec:
    return dataclasses.replace(self, name=name)

  def world_to_camera(self) -> np.ndarray:
    return np.linalg.inv(self.c2w_44)

  def project(self, points_n3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates [N, 2] (x right, y down; pixel (i, j) centred at (i+.5, j+.5)) and depths [N]."""
    points = np.asarray(points_n3, np.float64).reshape(-1, 3)
    camera = (points - self.c2w_44[:3, 3]) @ self.c2w_44[:3, :3]
    z = camera[:, 2]
    safe = np.where(np.abs(z) > 1e-12, z, 1e-12)
    xy = self.focal * camera[:, :2] / safe[:, None] + np.array([0.5 * self.width, 0.5 * self.height])
    return xy, z

  def to_jaxlab(self):
    """The `jaxlab.splat.Camera` of this view."""
    from jaxlab.splat import Camera  # noqa: PLC0415 (jax is not needed to simulate)

    return Camera.from_fov(self.c2w_44.astype(np.float32), fov_x_radians=self.fov_x, width=self.width,
                           height=self.height)


def look_at_c2w(eye_3: Sequence[float], target_3: Sequence[float], up_3: Sequence[float] = (0.0, 0.0, 1.0),
                roll: float = 0.0) -> np.ndarray:
  """OpenCV camera-to-world pose at `eye_3` looking at `target_3`, rolled about the view axis."""
  eye = np.asarray(eye_3, np.float64)
  forward = np.asarray(target_3, np.float64) - eye
  if np.linalg.norm(forward) < 1e-9:
    raise ValueError(f"eye {eye.tolist()} and target coincide")
  forward /= np.linalg.norm(forward)
  right = np.cross(forward, np.asarray(up_3, np.float64))
  if np.linalg.norm(right) < 1e-6:
    raise ValueError(f"view direction {forward.tolist()} is parallel to up {list(up_3)}")
  right /= np.linalg.norm(right)
  down = np.cross(forward, right)
  c, s = math.cos(roll), math.sin(roll)
  right, down = c * right + s * down, -s * right + c * down
  c2w = np.eye(4)
  c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
  return c2w


# The policy cameras. Front: across the table from the robot, looking back at it; side: from
# the robot's right (-y). Both frame the object grid, the tray and the gripper's path.
FRONT = CameraSpec.looking_at("front", (1.1, 0.06, 0.66), (0.42, 0.06, 0.1), fov_x=math.radians(60.0))
SIDE = CameraSpec.looking_at("side", (0.6, -0.7, 0.55), (0.48, 0.08, 0.05), fov_x=math.radians(60.0))
SCENE_CENTER = np.array([0.42, 0.05, 0.05])


def default_cameras(width: int = 64, height: int | None = None) -> list[CameraSpec]:
  """[FRONT, SIDE] at the given resolution."""
  return [FRONT.resized(width, height), SIDE.resized(width, height)]


def orbit_cameras(count: int, radius: float, look_at: Sequence[float] = tuple(SCENE_CENTER),
                  heights: Sequence[float] = (0.4, 0.8), *, fov_x: float = math.radians(60.0), width: int = 64,
                  height: int | None = None, name: str = "orbit") -> list[CameraSpec]:
  """`count` cameras on circles of `radius` about `look_at`, cycling through `heights` above it.

  Camera k sits at azimuth 2πk/count (so each height ring is spread evenly too) and looks
  at `look_at`; names are f"{name}_{k}".
  """
  if count < 1 or radius <= 0 or not heights:
    raise ValueError(f"orbit_cameras needs count >= 1, radius > 0 and heights; got {count}, {radius}, {heights}")
  center = np.asarray(look_at, np.float64)
  cameras = []
  for k in range(count):
    azimuth = 2.0 * math.pi * k / count
    eye = center + np.array([radius * math.cos(azimuth), radius * math.sin(azimuth), heights[k % len(heights)]])
    cameras.append(CameraSpec.looking_at(f"{name}_{k}", eye, center, fov_x=fov_x, width=width,
                                         height=width if height is None else height))
  return cameras


class RenderResult(NamedTuple):
  """One render: RGB, camera-space depth (m, 0 where nothing), body id and link index per pixel.

  `body_hw` is -1 where no body was hit; `link_hw` is the pybullet link index (-1 = the
  body's base link, also where nothing was hit).
  """

  rgb_hw3: np.ndarray
  depth_hw: np.ndarray
  body_hw: np.ndarray
  link_hw: np.ndarray


def _view_matrix(camera: CameraSpec) -> list[float]:
  c2w_gl = camera.c2w_44 @ np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV -> OpenGL camera axes
  return np.linalg.inv(c2w_gl).T.reshape(-1).tolist()  # column-major


def _projection_matrix(camera: CameraSpec, near: float, far: float) -> list[float]:
  fx = fy = camera.focal
  # TinyRenderer samples pixel column i at x = i and row j at y = j + 1 (top-down), not at the
  # centres (i + 0.5, j + 0.5): shift the principal point half a pixel (measured, see tests).
  projection = np.array([
      [2.0 * fx / camera.width, 0.0, 1.0 / camera.width, 0.0],
      [0.0, 2.0 * fy / camera.height, 1.0 / camera.height, 0.0],
      [0.0, 0.0, -(far + near) / (far - near), -2.0 * far * near / (far - near)],
      [0.0, 0.0, -1.0, 0.0],
  ])
  return projection.T.reshape(-1).tolist()


def render(world: World, camera: CameraSpec, *, light: Light | None = None, near: float = NEAR,
           far: float = FAR) -> RenderResult:
  """Renders `world` from `camera` with TinyRenderer (the world's light unless `light` is given)."""
  p = world.pybullet
  light = world.light if light is None else light
  width, height = int(camera.width), int(camera.height)
  _, _, rgba, depth_buffer, segmentation = p.getCameraImage(
      width, height, _view_matrix(camera), _projection_matrix(camera, near, far),
      lightDirection=list(light.direction_3), lightColor=list(light.color_3),
      lightAmbientCoeff=light.ambient, lightDiffuseCoeff=light.diffuse, lightSpecularCoeff=light.specular,
      shadow=int(light.shadow), renderer=p.ER_TINY_RENDERER,
      flags=p.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX, physicsClientId=world.client)
  rgb = np.asarray(rgba, np.uint8).reshape(height, width, 4)[..., :3].copy()
  buffer = np.asarray(depth_buffer, np.float64).reshape(height, width)
  segmentation = np.asarray(segmentation, np.int64).reshape(height, width)
  hit = segmentation >= 0
  # OpenGL depth buffer -> camera-space z.
  depth = far * near / (far - (far - near) * buffer)
  depth = np.where(hit, depth, 0.0).astype(np.float32)
  body = np.where(hit, segmentation & ((1 << 24) - 1), -1).astype(np.int32)
  link = np.where(hit, (segmentation >> 24) - 1, -1).astype(np.int32)
  return RenderResult(rgb, depth, body, link)

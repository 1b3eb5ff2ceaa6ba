"""Pinhole cameras for splatting: intrinsics, world-to-camera extrinsics, near/far planes.

Camera space is OpenCV's: x right, y down, z forward (the view direction). Poses from
OpenGL / Blender / NeRF (x right, y up, z backward) are converted by flipping the camera's
y and z axes. A `Camera` may carry leading batch dimensions on every array field; index it
(`cameras[i]`) or build batches with `stack_cameras`; `project` takes one camera and is
batched over cameras with `jax.vmap`.
"""

from collections.abc import Sequence
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.splat.validate import as_float32, check_camera, is_concrete

# Column signs that turn an OpenGL camera-to-world pose into an OpenCV one (flip y and z).
_OPENGL_TO_OPENCV_COLUMN_SIGNS = (1.0, -1.0, -1.0, 1.0)
CONVENTIONS = ("opencv", "opengl")


def _check_pose(name: str, pose_44: Any) -> None:
  shape = np.shape(pose_44)
  if len(shape) < 2 or shape[-2:] != (4, 4):
    raise ValueError(f"{name} must have shape [..., 4, 4]; got {shape}")
  if is_concrete(pose_44):
    bad = int(np.sum(~np.isfinite(np.asarray(pose_44))))
    if bad:
      raise ValueError(f"{name} has {bad} non-finite value(s)")


def _invert_pose(name: str, pose_44: Any) -> jax.Array:
  """The inverse of a (batch of) 4x4 transform(s); a singular one is a ValueError."""
  if not is_concrete(pose_44):
    # HIGHEST: the default GPU precision may round float32 products to TF32.
    with jax.default_matmul_precision("highest"):
      return jnp.linalg.inv(pose_44)
  # Known values: invert on the host in float64, then round once to float32.
  with np.errstate(all="ignore"):
    try:
      inverse_44 = np.linalg.inv(np.asarray(pose_44, np.float64))
    except np.linalg.LinAlgError:
      inverse_44 = np.full(np.shape(pose_44), np.nan)
  if not np.all(np.isfinite(inverse_44)):
    raise ValueError(f"{name} is singular (no inverse)")
  return as_float32(inverse_44)


@flax.struct.dataclass
class Camera:
  """Pinhole camera(s) with OpenCV axes; leading batch dims B are allowed on every array.

  Attributes:
    fx, fy: [*B] focal lengths in pixels.
    cx, cy: [*B] principal point in pixels (pixel (i, j) has its centre at (i + 0.5, j + 0.5)).
    world_to_camera: [*B, 4, 4] extrinsics mapping world points to OpenCV camera space.
    near, far: [*B] depth range (camera-space z) kept by projection.
    width, height: image size in pixels (static).
  """

  fx: jax.Array
  fy: jax.Array
  cx: jax.Array
  cy: jax.Array
  world_to_camera: jax.Array
  near: jax.Array
  far: jax.Array
  width: int = flax.struct.field(pytree_node=False)
  height: int = flax.struct.field(pytree_node=False)

  @property
  def batch_shape(self) -> tuple[int, ...]:
    """Leading dims shared by every array field; () for a single camera."""
    return tuple(jnp.shape(self.fx))

  def __getitem__(self, index: Any) -> "Camera":
    """Indexes the batch dims of every array field, e.g. `cameras[2]` or `cameras[1:3]`."""
    if not self.batch_shape:
      raise IndexError("cannot index a single (unbatched) Camera")
    return jax.tree.map(lambda x: x[index], self)

  def camera_to_world(self) -> jax.Array:
    """[*B, 4, 4] pose of the camera in the world (OpenCV axes)."""
    with jax.default_matmul_precision("highest"):
      return jnp.linalg.inv(self.world_to_camera)

  def camera_center(self) -> jax.Array:
    """[*B, 3] camera position in the world: -R^T t for world_to_camera = [R | t]."""
    rotation = self.world_to_camera[..., :3, :3]
    translation = self.world_to_camera[..., :3, 3]
    return -jnp.sum(rotation * translation[..., :, None], axis=-2)

  @classmethod
  def from_world_to_camera(
      cls,
      world_to_camera_44: jax.Array,
      *,
      fx: Any,
      fy: Any,
      cx: Any,
      cy: Any,
      width: int,
      height: int,
      near: Any = 0.01,
      far: Any = 1e10,
  ) -> "Camera":
    """A camera from OpenCV world-to-camera extrinsics ([..., 4, 4]); scalars broadcast to the batch.

    Raises:
      ValueError: naming the field, for bad shapes, non-finite entries, fx or fy <= 0,
        width or height not a positive int, near <= 0 or near >= far (values are checked
        only when concrete).
    """
    world_to_camera_44 = as_float32(world_to_camera_44)
    _check_pose("world_to_camera", world_to_camera_44)
    batch_shape = world_to_camera_44.shape[:-2]
    scalars = {}
    for name, value in (("fx", fx), ("fy", fy), ("cx", cx), ("cy", cy), ("near", near), ("far", far)):
      value = as_float32(value)
      try:
        scalars[name] = value if value.shape == batch_shape else jnp.broadcast_to(value, batch_shape)
      except ValueError as e:
        raise ValueError(f"Camera {name} of shape {value.shape} does not broadcast to the pose batch {batch_shape}") from e
    for name, value in (("width", width), ("height", height)):
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"Camera {name} must be a positive int (pixels); got {value!r}")
    camera = cls(world_to_camera=world_to_camera_44, width=int(width), height=int(height), **scalars)
    check_camera(camera)
    return camera

  @classmethod
  def from_opencv(cls, camera_to_world_44: jax.Array, **intrinsics: Any) -> "Camera":
    """A camera from an OpenCV / COLMAP camera-to-world pose (x right, y down, z forward).

    Keyword arguments are those of `from_world_to_camera`: fx, fy, cx, cy, width, height,
    near=0.01, far=1e10.
    """
    _check_pose("camera_to_world", camera_to_world_44)
    return cls.from_world_to_camera(_invert_pose("camera_to_world", camera_to_world_44), **intrinsics)

  @classmethod
  def from_opengl(cls, camera_to_world_44: jax.Array, **intrinsics: Any) -> "Camera":
    """A camera from an OpenGL / Blender / NeRF camera-to-world pose (x right, y up, z backward).

    Keyword arguments are those of `from_world_to_camera`.
    """
    _check_pose("camera_to_world", camera_to_world_44)
    # Flipping the camera's y and z axes is exact: it only negates two columns.
    signs = _OPENGL_TO_OPENCV_COLUMN_SIGNS
    if isinstance(camera_to_world_44, jax.Array):
      opencv_pose_44 = camera_to_world_44 * jnp.asarray(signs, camera_to_world_44.dtype)
    else:
      opencv_pose_44 = np.asarray(camera_to_world_44, np.float64) * np.asarray(signs)
    return cls.from_opencv(opencv_pose_44, **intrinsics)

  @classmethod
  def from_fov(
      cls,
      camera_to_world_44: jax.Array,
      *,
      fov_x_radians: float,
      width: int,
      height: int,
      near: Any = 0.01,
      far: Any = 1e10,
      convention: str = "opencv",
  ) -> "Camera":
    """A camera with horizontal field of view `fov_x_radians`, square pixels, centred principal point.

    fx = fy = 0.5 * width / tan(fov_x / 2), cx = width / 2, cy = height / 2. `convention`
    ("opencv" or "opengl") names the axes of `camera_to_world_44`.
    """
    if convention not in CONVENTIONS:
      raise ValueError(f"convention must be one of {CONVENTIONS}; got {convention!r}")
    if is_concrete(fov_x_radians):
      fov = np.asarray(fov_x_radians, np.float64)
      if not np.all((fov > 0) & (fov < np.pi)):
        raise ValueError(f"fov_x_radians must be in (0, pi); got {fov_x_radians!r}")
      focal = 0.5 * width / np.tan(0.5 * fov)
    else:
      focal = 0.5 * width / jnp.tan(0.5 * fov_x_radians)
    constructor = cls.from_opencv if convention == "opencv" else cls.from_opengl
    return constructor(
        camera_to_world_44, fx=focal, fy=focal, cx=0.5 * width, cy=0.5 * height, width=width, height=height,
        near=near, far=far)


def look_at(eye_3: jax.Array, target_3: jax.Array, *, up_3: jax.Array) -> jax.Array:
  """[..., 4, 4] OpenCV camera-to-world pose at `eye_3` looking at `target_3`.

  The camera's z axis points at the target, its x axis to the right and its y axis down,
  i.e. image "up" is as close to the world direction `up_3` as the view allows. Inputs
  broadcast over leading dims.

  Raises:
    ValueError: (concrete inputs) if eye == target or the view direction is parallel to up.
  """
  if is_concrete(eye_3, target_3, up_3):
    eye, target, up = (np.asarray(v, np.float64) for v in (eye_3, target_3, up_3))
    forward = target - eye
    forward_norm = np.linalg.norm(forward, axis=-1)
    if np.any(forward_norm == 0):
      raise ValueError("look_at needs eye != target")
    right_norm = np.linalg.norm(np.cross(forward, up), axis=-1)
    if np.any(right_norm <= 1e-6 * forward_norm * np.linalg.norm(up, axis=-1)):
      raise ValueError("look_at needs a view direction (target - eye) not parallel to up_3")
  return _look_at(*(as_float32(v) for v in (eye_3, target_3, up_3)))


@jax.jit
def _look_at(eye_3: jax.Array, target_3: jax.Array, up_3: jax.Array) -> jax.Array:
  """`look_at` on checked inputs, as one compiled program."""
  eye_3, target_3, up_3 = jnp.broadcast_arrays(eye_3, target_3, up_3)
  forward = target_3 - eye_3
  forward = forward / jnp.linalg.norm(forward, axis=-1, keepdims=True)
  right = jnp.cross(forward, up_3)
  right = right / jnp.linalg.norm(right, axis=-1, keepdims=True)
  down = jnp.cross(forward, right)
  rotation_33 = jnp.stack([right, down, forward], axis=-1)
  top_34 = jnp.concatenate([rotation_33, eye_3[..., None]], axis=-1)
  bottom_14 = jnp.broadcast_to(jnp.asarray([[0.0, 0.0, 0.0, 1.0]], eye_3.dtype), (*eye_3.shape[:-1], 1, 4))
  return jnp.concatenate([top_34, bottom_14], axis=-2)


def stack_cameras(cameras: Sequence[Camera]) -> Camera:
  """One batched `Camera` ([len(cameras), *B]) from cameras of equal size and batch shape."""
  cameras = list(cameras)
  if not cameras:
    raise ValueError("stack_cameras needs at least one camera")
  first = cameras[0]
  for i, camera in enumerate(cameras[1:], start=1):
    if (camera.width, camera.height) != (first.width, first.height):
      raise ValueError(
          f"stack_cameras needs one image size; camera 0 is {first.width}x{first.height},"
          f" camera {i} is {camera.width}x{camera.height}")
    if camera.batch_shape != first.batch_shape:
      raise ValueError(
          f"stack_cameras needs one batch shape; camera 0 has {first.batch_shape}, camera {i} has {camera.batch_shape}")
  return jax.tree.map(lambda *xs: jnp.stack(xs), *cameras)

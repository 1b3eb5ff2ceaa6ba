"""Tests for `jaxlab.splat.camera`: conventions, constructors, batching and bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.splat import Camera, look_at, stack_cameras

INTRINSICS = dict(fx=100.0, fy=120.0, cx=32.0, cy=24.0, width=64, height=48)


def _pixel(camera: Camera, point_3: np.ndarray) -> tuple[float, float, float]:
  """(column, row, depth) of a world point, from the camera's matrix by hand."""
  x, y, z, _ = np.asarray(camera.world_to_camera, np.float64) @ np.append(point_3, 1.0)
  return float(camera.fx) * x / z + float(camera.cx), float(camera.fy) * y / z + float(camera.cy), z


def _pose(rotation_33, translation_3) -> np.ndarray:
  pose = np.eye(4)
  pose[:3, :3] = rotation_33
  pose[:3, 3] = translation_3
  return pose


def test_opencv_pose_is_inverted_into_world_to_camera():
  angle = 0.3
  rotation = np.array([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]])
  camera_to_world = _pose(rotation, [0.5, -1.0, -4.0])
  camera = Camera.from_opencv(camera_to_world, **INTRINSICS)
  np.testing.assert_allclose(np.asarray(camera.world_to_camera) @ camera_to_world, np.eye(4), atol=1e-6)
  np.testing.assert_allclose(np.asarray(camera.camera_center()), [0.5, -1.0, -4.0], atol=1e-6)
  np.testing.assert_allclose(np.asarray(camera.camera_to_world()), camera_to_world, atol=1e-6)
  assert camera.batch_shape == () and camera.width == 64 and camera.fx.dtype == jnp.float32


def test_opengl_camera_sees_y_up_and_looks_down_minus_z():
  # A NeRF/Blender camera at z = 5 with identity rotation looks at the origin, y up.
  camera = Camera.from_opengl(_pose(np.eye(3), [0, 0, 5]), **INTRINSICS)
  u, v, depth = _pixel(camera, np.zeros(3))
  assert (u, v) == pytest.approx((32.0, 24.0)) and depth == pytest.approx(5.0)
  _, v_up, _ = _pixel(camera, np.array([0.0, 1.0, 0.0]))
  u_right, _, _ = _pixel(camera, np.array([1.0, 0.0, 0.0]))
  assert v_up < 24.0  # rows grow downwards: world up is towards row 0
  assert u_right > 32.0


def test_opengl_and_opencv_constructors_agree_on_equivalent_poses():
  opencv_pose = np.asarray(look_at([2.0, 1.0, -3.0], [0.0, 0.2, 0.5], up_3=[0.0, -1.0, 0.0]))
  opengl_pose = opencv_pose * np.array([1.0, -1.0, -1.0, 1.0])  # flip the camera's y and z axes
  from_cv = Camera.from_opencv(opencv_pose, **INTRINSICS)
  from_gl = Camera.from_opengl(opengl_pose, **INTRINSICS)
  np.testing.assert_allclose(np.asarray(from_gl.world_to_camera), np.asarray(from_cv.world_to_camera), atol=1e-6)


def test_look_at_points_the_camera_at_the_target_with_up_on_top():
  eye, target, up = np.array([3.0, -2.0, 1.0]), np.array([0.5, 0.5, 4.0]), np.array([0.0, 0.0, 1.0])
  pose = np.asarray(look_at(eye, target, up_3=up), np.float64)
  rotation = pose[:3, :3]
  np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-6)
  assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-6)
  camera = Camera.from_opencv(pose, **INTRINSICS)
  u, v, depth = _pixel(camera, target)
  assert (u, v) == pytest.approx((32.0, 24.0), abs=1e-4)
  assert depth == pytest.approx(np.linalg.norm(target - eye), rel=1e-6)
  _, v_above, _ = _pixel(camera, target + 0.1 * up)
  assert v_above < 24.0
  with pytest.raises(ValueError, match="parallel"):
    look_at(eye, eye + up, up_3=up)
  with pytest.raises(ValueError, match="eye != target"):
    look_at(eye, eye, up_3=up)


def test_from_fov_puts_the_edge_of_the_view_at_the_image_edge():
  fov = math.radians(60.0)
  camera = Camera.from_fov(np.eye(4), fov_x_radians=fov, width=80, height=40)
  assert float(camera.fx) == pytest.approx(0.5 * 80 / math.tan(math.radians(30.0)), rel=1e-6)
  assert float(camera.fy) == float(camera.fx) and (float(camera.cx), float(camera.cy)) == (40.0, 20.0)
  u, _, _ = _pixel(camera, np.array([math.tan(fov / 2) * 3.0, 0.0, 3.0]))
  assert u == pytest.approx(80.0, rel=1e-5)
  gl = Camera.from_fov(np.eye(4), fov_x_radians=fov, width=80, height=40, convention="opengl")
  np.testing.assert_allclose(np.asarray(gl.world_to_camera), np.diag([1.0, -1.0, -1.0, 1.0]), atol=0)
  with pytest.raises(ValueError, match="convention"):
    Camera.from_fov(np.eye(4), fov_x_radians=fov, width=80, height=40, convention="blender")
  with pytest.raises(ValueError, match="fov_x_radians"):
    Camera.from_fov(np.eye(4), fov_x_radians=4.0, width=80, height=40)


def test_batches_index_and_stack():
  poses = np.stack([_pose(np.eye(3), [i, 0.0, -2.0 - i]) for i in range(3)])
  batch = Camera.from_opencv(poses, fx=np.array([90.0, 100.0, 110.0]), fy=120.0, cx=32.0, cy=24.0, width=64, height=48)
  assert batch.batch_shape == (3,) and batch.fy.shape == (3,) and batch.world_to_camera.shape == (3, 4, 4)
  single = Camera.from_opencv(poses[1], **INTRINSICS)
  for got, want in zip(jax.tree.leaves(batch[1]), jax.tree.leaves(single)):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)
  assert batch[1:].batch_shape == (2,)
  stacked = stack_cameras([batch[i] for i in range(3)])
  for got, want in zip(jax.tree.leaves(stacked), jax.tree.leaves(batch)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  with pytest.raises(ValueError, match="image size"):
    stack_cameras([single, Camera.from_opencv(poses[1], **dict(INTRINSICS, width=65))])
  with pytest.raises(IndexError):
    single[0]
  with pytest.raises(ValueError, match="fx"):
    Camera.from_opencv(poses, **dict(INTRINSICS, fx=np.ones(2)))


@pytest.mark.parametrize("change, field", [
    (dict(fx=0.0), "fx"),
    (dict(fy=-1.0), "fy"),
    (dict(cx=float("nan")), "cx"),
    (dict(width=0), "width"),
    (dict(height=4.5), "height"),
    (dict(near=2.0, far=1.0), "near"),
    (dict(near=0.0), "near"),
])
def test_bad_intrinsics_name_the_field(change, field):
  with pytest.raises(ValueError, match=field):
    Camera.from_opencv(np.eye(4), **dict(INTRINSICS, **change))


def test_bad_poses():
  bad = np.eye(4)
  bad[0, 3] = np.inf
  with pytest.raises(ValueError, match="camera_to_world has 1 non-finite"):
    Camera.from_opencv(bad, **INTRINSICS)
  with pytest.raises(ValueError, match="singular"):
    Camera.from_opencv(np.zeros((4, 4)), **INTRINSICS)
  with pytest.raises(ValueError, match=r"\[\.\.\., 4, 4\]"):
    Camera.from_opengl(np.eye(4)[:3], **INTRINSICS)


def test_under_jit_shapes_are_checked_but_values_are_not():
  make = jax.jit(lambda pose, fx: Camera.from_opencv(pose, **dict(INTRINSICS, fx=fx)))
  camera = make(jnp.eye(4), jnp.float32(0.0))  # fx = 0 cannot be seen while tracing
  assert float(camera.fx) == 0.0
  with pytest.raises(ValueError, match="4, 4"):
    make(jnp.eye(3), jnp.float32(1.0))

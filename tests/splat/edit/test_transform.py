"""Equivariant transform: it commutes with rendering; quaternions, scales, concat, select, yaw."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.splat import Camera, estimate_capacity_for, look_at, random_gaussians, render, rotation_matrices
from jaxlab.splat.edit import (
    concat_gaussians,
    matrix_to_quaternion,
    rigid_transform_44,
    select_gaussians,
    transform_gaussians,
    yaw_about_point,
)

SIZE = 32


def _random_rotation(seed: int) -> jax.Array:
  return rotation_matrices(jax.random.normal(jax.random.key(seed), (4,)))


def _pose(rotation_33, translation_3) -> jax.Array:
  return jnp.eye(4).at[:3, :3].set(rotation_33).at[:3, 3].set(jnp.asarray(translation_3, jnp.float32))


def _camera(c2w_44) -> Camera:
  return Camera.from_fov(c2w_44, fov_x_radians=math.radians(50.0), width=SIZE, height=SIZE)


@pytest.fixture(scope="module")
def scene():
  # Large, fairly opaque Gaussians with strong view-dependent colour (degree-3 SH).
  g = random_gaussians(jax.random.key(0), 64, sh_degree=3, mean_std=0.6, log_scale_mean=-1.6, log_scale_std=0.3,
                       sh_std=0.4)
  return g.replace(active=g.active.at[-4:].set(False))


def test_transform_commutes_with_rendering(scene):
  c2w = look_at(jnp.array([0.3, -0.2, 1.0]), jnp.array([0.0, 0.0, 6.0]), up_3=jnp.array([0.0, -1.0, 0.0]))
  pose = _pose(_random_rotation(1), [0.7, -1.2, 2.5])
  camera, moved_camera = _camera(c2w), _camera(pose @ c2w)
  capacity = 4 * estimate_capacity_for(scene, camera)
  want = render(scene, camera, capacity=capacity)
  assert float(want.alpha.max()) > 0.5 and float(want.rgb.std()) > 0.05  # a real image
  got = render(rigid_transform_44(scene, pose), moved_camera, capacity=capacity)
  np.testing.assert_allclose(got.rgb, want.rgb, atol=1e-4)
  np.testing.assert_allclose(got.alpha, want.alpha, atol=1e-4)
  # Without the SH rotation the view-dependent colour no longer follows the object.
  stale = render(rigid_transform_44(scene, pose, rotate_sh=False), moved_camera, capacity=capacity)
  assert float(jnp.max(jnp.abs(stale.rgb - want.rgb))) > 1e-2
  np.testing.assert_allclose(stale.alpha, want.alpha, atol=1e-4)  # geometry is still right


def test_fields_of_a_similarity(scene):
  rotation, translation, scale = _random_rotation(2), jnp.array([1.0, 2.0, -3.0]), 2.5
  moved = transform_gaussians(scene, rotation, translation, scale)
  np.testing.assert_allclose(moved.means, (scale * scene.means) @ rotation.T + translation, atol=1e-5)
  np.testing.assert_allclose(moved.log_scales, scene.log_scales + math.log(scale), atol=1e-6)
  np.testing.assert_allclose(rotation_matrices(moved.quats), rotation @ rotation_matrices(scene.quats), atol=1e-5)
  assert bool(jnp.all(moved.quats[:, 0] >= 0))
  np.testing.assert_allclose(jnp.linalg.norm(moved.quats, axis=-1), 1.0, atol=1e-6)
  np.testing.assert_array_equal(moved.opacity_logits, scene.opacity_logits)
  np.testing.assert_array_equal(moved.sh[:, 0], scene.sh[:, 0])
  np.testing.assert_array_equal(moved.active, scene.active)
  # Covariances follow: s^2 R Sigma R^T.
  np.testing.assert_allclose(moved.covariances(), scale**2 * rotation @ scene.covariances() @ rotation.T, atol=1e-5)


def test_matrix_to_quaternion_every_pivot():
  quats = jax.random.normal(jax.random.key(3), (500, 4))
  # Include the near-180-degree rotations (w ~ 0), where the w pivot is unusable.
  quats = jnp.concatenate([quats, jnp.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [1e-4, 0.0, 0.0, 1.0]])])
  rotations = rotation_matrices(quats)
  got = matrix_to_quaternion(rotations)
  np.testing.assert_allclose(rotation_matrices(got), rotations, atol=2e-6)
  unit = quats / jnp.linalg.norm(quats, axis=-1, keepdims=True)
  np.testing.assert_allclose(got, unit * jnp.sign(unit[:, :1] + 1e-12), atol=2e-6)


def test_transform_under_vmap_and_bad_input(scene):
  poses = jnp.stack([_pose(_random_rotation(s), [s, 0.0, 0.0]) for s in range(3)])
  batched = jax.vmap(lambda p: rigid_transform_44(scene, p))(poses)
  np.testing.assert_allclose(batched.means[2], rigid_transform_44(scene, poses[2]).means, atol=1e-6)
  with pytest.raises(ValueError, match="proper rotation"):
    transform_gaussians(scene, jnp.diag(jnp.array([1.0, 1.0, -1.0])), jnp.zeros(3))
  with pytest.raises(ValueError, match="scale must be > 0"):
    transform_gaussians(scene, jnp.eye(3), jnp.zeros(3), 0.0)
  with pytest.raises(ValueError, match="translation_3"):
    transform_gaussians(scene, jnp.eye(3), jnp.zeros(4))


def test_concat_and_select(scene):
  small = random_gaussians(jax.random.key(4), 5, sh_degree=0)
  both = concat_gaussians([scene, small])
  assert both.num == scene.num + 5 and both.sh.shape == (scene.num + 5, 16, 3)
  np.testing.assert_array_equal(both.active, jnp.concatenate([scene.active, small.active]))
  np.testing.assert_array_equal(both.sh[scene.num:, 0], small.sh[:, 0])
  assert float(jnp.abs(both.sh[scene.num:, 1:]).max()) == 0.0  # padded SH are zero
  mask = jnp.arange(scene.num) < 10
  selected = select_gaussians(scene, mask)
  assert selected.num == scene.num
  np.testing.assert_array_equal(selected.active, scene.active & mask)
  np.testing.assert_array_equal(selected.means, scene.means)
  with pytest.raises(ValueError, match="at least one"):
    concat_gaussians([])
  with pytest.raises(ValueError, match="mask_n"):
    select_gaussians(scene, mask[:5])


def test_yaw_about_point():
  pose = yaw_about_point(math.pi / 2, 1.0, 2.0)
  np.testing.assert_allclose(pose @ jnp.array([1.0, 2.0, 0.7, 1.0]), [1.0, 2.0, 0.7, 1.0], atol=1e-6)
  np.testing.assert_allclose(pose @ jnp.array([2.0, 2.0, 0.0, 1.0]), [1.0, 3.0, 0.0, 1.0], atol=1e-6)
  thetas = jnp.linspace(-3.0, 3.0, 4)
  poses = jax.jit(jax.vmap(yaw_about_point, in_axes=(0, None, None)))(thetas, 0.3, -0.1)
  assert poses.shape == (4, 4, 4)
  rotations = poses[:, :3, :3]
  np.testing.assert_allclose(rotations @ jnp.swapaxes(rotations, 1, 2), np.broadcast_to(np.eye(3), (4, 3, 3)), atol=1e-6)

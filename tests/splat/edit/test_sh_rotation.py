"""SH rotation: colour'(R d) = colour(d), identity and composition, every degree."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.splat import rotation_matrices, sh_to_color
from jaxlab.splat.edit import rotate_sh, sh_rotation_matrices


def _rotations(seed: int, num: int) -> jax.Array:
  return rotation_matrices(jax.random.normal(jax.random.key(seed), (num, 4)))


@pytest.mark.parametrize("num_coeffs", [1, 4, 9, 16])
def test_rotated_colour_at_rotated_direction_matches(num_coeffs):
  sh = jax.random.normal(jax.random.key(1), (200, num_coeffs, 3))
  dirs = jax.random.normal(jax.random.key(2), (200, 3))
  want = sh_to_color(sh, dirs)
  for rotation in _rotations(3, 4):
    got = sh_to_color(rotate_sh(sh, rotation), dirs @ rotation.T)
    np.testing.assert_allclose(got, want, atol=1e-5)
  # Unrotated coefficients do not follow the rotation (the check above has teeth).
  if num_coeffs > 1:
    assert float(jnp.max(jnp.abs(sh_to_color(sh, dirs @ rotation.T) - want))) > 0.1


def test_one_rotation_per_gaussian():
  sh = jax.random.normal(jax.random.key(4), (50, 16, 3))
  dirs = jax.random.normal(jax.random.key(5), (50, 3))
  rotations = _rotations(6, 50)
  got = sh_to_color(rotate_sh(sh, rotations), jnp.einsum("nij,nj->ni", rotations, dirs))
  np.testing.assert_allclose(got, sh_to_color(sh, dirs), atol=1e-5)


def test_identity_leaves_coefficients_and_dc_is_untouched():
  sh = jax.random.normal(jax.random.key(7), (30, 16, 3))
  np.testing.assert_allclose(rotate_sh(sh, jnp.eye(3)), sh, atol=2e-6)
  rotated = rotate_sh(sh, _rotations(8, 1)[0])
  np.testing.assert_array_equal(rotated[:, 0], sh[:, 0])
  assert float(jnp.max(jnp.abs(rotated - sh))) > 0.1


def test_blocks_are_orthogonal_and_compose():
  r1, r2 = _rotations(9, 2)
  blocks_12 = sh_rotation_matrices(r1 @ r2, 3)
  for d1, d2, d12, size in zip(sh_rotation_matrices(r1), sh_rotation_matrices(r2), blocks_12, (3, 5, 7)):
    assert d12.shape == (size, size)
    np.testing.assert_allclose(d12, d1 @ d2, atol=2e-6)
    np.testing.assert_allclose(d1 @ d1.T, np.eye(size), atol=2e-6)
  # Applied: rotating by R2 then R1 equals rotating by R1 R2.
  sh = jax.random.normal(jax.random.key(10), (20, 16, 3))
  np.testing.assert_allclose(rotate_sh(rotate_sh(sh, r2), r1), rotate_sh(sh, r1 @ r2), atol=1e-5)
  assert sh_rotation_matrices(r1, 0) == ()


def test_degree_one_block_is_the_rotation_in_basis_order():
  # Degree-1 basis is C1 * (-y, z, -x): D_1 = P R P^T with P mapping (x, y, z) to (-y, z, -x).
  rotation = _rotations(11, 1)[0]
  p = jnp.asarray([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]])
  np.testing.assert_allclose(sh_rotation_matrices(rotation, 1)[0], p @ rotation @ p.T, atol=2e-6)


def test_jit_and_bad_shapes():
  sh = jax.random.normal(jax.random.key(12), (5, 9, 3))
  rotation = _rotations(13, 1)[0]
  np.testing.assert_allclose(jax.jit(rotate_sh)(sh, rotation), rotate_sh(sh, rotation), atol=1e-6)
  with pytest.raises(ValueError, match="rotation"):
    rotate_sh(sh, jnp.eye(4))
  with pytest.raises(ValueError, match="SH coefficient count"):
    rotate_sh(jnp.zeros((5, 7, 3)), rotation)
  with pytest.raises(ValueError, match="degree"):
    sh_rotation_matrices(rotation, 4)

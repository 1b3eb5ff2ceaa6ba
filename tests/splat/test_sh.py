"""Tests for `jaxlab.splat.sh`: the 3DGS real SH basis against an independent evaluation.

The reference below builds real spherical harmonics from associated Legendre polynomials
and azimuthal sines/cosines (no shared constants with the code under test), with the sign
(-1)^m that the INRIA / gsplat basis carries.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.splat import sh

# Jitted once per shape: eager calls would compile every jnp op separately.
_basis = jax.jit(sh.sh_basis, static_argnums=1)
_color = jax.jit(sh.sh_to_color)

def _legendre(l: int, m: int, z: np.ndarray) -> np.ndarray:
  """Associated Legendre P_l^m(z), m >= 0, without the Condon-Shortley phase."""
  p_mm = math.prod(range(1, 2 * m, 2)) * (1.0 - z * z) ** (m / 2)  # (2m-1)!! sin^m
  if l == m:
    return p_mm
  p_prev, p = p_mm, z * (2 * m + 1) * p_mm
  for ell in range(m + 2, l + 1):
    p_prev, p = p, ((2 * ell - 1) * z * p - (ell + m - 1) * p_prev) / (ell - m)
  return p


def _reference_basis(dirs_n3: np.ndarray, degree: int) -> np.ndarray:
  """[N, (degree+1)^2] real SH at unit directions, index l^2 + l + m, 3DGS signs."""
  x, y, z = dirs_n3.T
  phi = np.arctan2(y, x)
  columns = []
  for l in range(degree + 1):
    for m in range(-l, l + 1):
      a = abs(m)
      norm = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - a) / math.factorial(l + a))
      if m == 0:
        columns.append(norm * _legendre(l, 0, z))
      else:
        azimuth = np.cos(a * phi) if m > 0 else np.sin(a * phi)
        columns.append((-1) ** a * math.sqrt(2) * norm * _legendre(l, a, z) * azimuth)
  return np.stack(columns, axis=-1)


def _unit_dirs(n: int, seed: int = 0) -> np.ndarray:
  d = np.random.default_rng(seed).standard_normal((n, 3))
  return d / np.linalg.norm(d, axis=-1, keepdims=True)


def _fibonacci_sphere(m: int) -> np.ndarray:
  """[m, 3] near-uniform unit vectors (an equal-area quadrature of the sphere)."""
  k = np.arange(m) + 0.5
  z = 1.0 - 2.0 * k / m
  phi = math.pi * (1.0 + math.sqrt(5.0)) * k
  r = np.sqrt(1.0 - z * z)
  return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=-1)


def test_basis_matches_independent_real_sh_and_is_orthonormal():
  dirs = _fibonacci_sphere(20000)
  basis = np.asarray(_basis(jnp.asarray(np.float32(dirs)), 3), np.float64)
  # Degree 3 holds every lower degree as its leading columns (index l^2 + l + m).
  np.testing.assert_allclose(basis, _reference_basis(dirs, 3), rtol=1e-5, atol=1e-5)
  # Quadrature of Y_i Y_j over the sphere: the Gram matrix is the identity.
  gram = 4.0 * math.pi / len(dirs) * basis.T @ basis
  np.testing.assert_allclose(gram, np.eye(16), atol=2e-3)


def test_lower_degree_basis_is_a_prefix():
  dirs = jnp.asarray(np.float32(_unit_dirs(5)))
  full = np.asarray(sh.sh_basis(dirs, 3))
  for degree in range(3):
    np.testing.assert_array_equal(np.asarray(sh.sh_basis(dirs, degree)), full[:, : (degree + 1) ** 2])


def test_degree0_color_is_c0_dc_plus_half_clamped():
  rng = np.random.default_rng(1)
  dc = rng.standard_normal((32, 1, 3)).astype(np.float32) * 2.0  # some colours go below 0
  dirs = rng.standard_normal((32, 3)).astype(np.float32)
  got = np.asarray(_color(jnp.asarray(dc), jnp.asarray(dirs)))
  expected = np.maximum(0.28209479177387814 * dc[:, 0] + 0.5, 0.0)
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
  assert (expected == 0).any() and (expected > 0).any()


@pytest.mark.parametrize("degree", [1, 3])
def test_color_matches_reference_for_unnormalised_directions(degree):
  rng = np.random.default_rng(degree)
  num_coeffs = (degree + 1) ** 2
  coeffs = rng.standard_normal((40, num_coeffs, 3)).astype(np.float32) * 0.5
  unit = _unit_dirs(40, seed=degree)
  lengths = np.exp(rng.uniform(-3, 3, size=(40, 1)))  # normalisation happens inside
  got = np.asarray(_color(jnp.asarray(coeffs), jnp.asarray(np.float32(unit * lengths))))
  expected = np.maximum(np.einsum("nk,nkc->nc", _reference_basis(unit, degree), coeffs) + 0.5, 0.0)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-5)


def test_zero_direction_gives_dc_colour_and_finite_gradient():
  coeffs = jnp.asarray(np.float32(np.random.default_rng(2).standard_normal((1, 16, 3)) * 0.3))
  dirs = jnp.zeros((1, 3), jnp.float32)
  value_and_grad = jax.jit(jax.value_and_grad(lambda d, c: jnp.sum(sh.sh_to_color(c, d) * jnp.arange(3.0)), argnums=(0, 1)))
  total, (grad_dirs, grad_coeffs) = value_and_grad(dirs, coeffs)
  expected = np.maximum(0.28209479177387814 * np.asarray(coeffs[0, 0]) + 0.5, 0)
  assert float(total) == pytest.approx(float(expected @ np.arange(3.0)), rel=1e-6)
  assert np.all(np.isfinite(grad_dirs)) and np.all(np.isfinite(grad_coeffs))


def test_rgb_dc_round_trip_and_colour():
  rgb = np.random.default_rng(3).uniform(0, 1, size=(10, 3)).astype(np.float32)
  dc = sh.rgb_to_sh_dc(rgb)  # plain arithmetic: works on NumPy arrays too
  np.testing.assert_allclose(sh.sh_dc_to_rgb(dc), rgb, rtol=1e-6, atol=1e-6)
  color = _color(jnp.asarray(dc[:, None, :]), jnp.ones((10, 3), jnp.float32))
  np.testing.assert_allclose(np.asarray(color), rgb, rtol=1e-6, atol=1e-6)


def test_bad_coefficient_count_names_valid_counts():
  with pytest.raises(ValueError, match=r"\(1, 4, 9, 16\)"):
    sh.sh_to_color(jnp.zeros((2, 5, 3)), jnp.ones((2, 3)))
  with pytest.raises(ValueError, match="degree"):
    sh.num_sh_coeffs(4)

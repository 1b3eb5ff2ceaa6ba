"""Tests for `jaxlab.splat.gaussians`: rotations, covariances, activations, constructors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.splat import gaussians as gs

_rotations = jax.jit(gs.rotation_matrices)


def _hamilton(p: np.ndarray, q: np.ndarray) -> np.ndarray:
  """Quaternion product p q, (w, x, y, z), batched."""
  pw, px, py, pz = np.moveaxis(p, -1, 0)
  qw, qx, qy, qz = np.moveaxis(q, -1, 0)
  return np.stack([
      pw * qw - px * qx - py * qy - pz * qz,
      pw * qx + px * qw + py * qz - pz * qy,
      pw * qy - px * qz + py * qw + pz * qx,
      pw * qz + px * qy - py * qx + pz * qw,
  ], axis=-1)


def _rotate_by_quaternion(q_n4: np.ndarray, v_n3: np.ndarray) -> np.ndarray:
  """q v q* / |q|^2 with v as a pure quaternion: rotation without a matrix."""
  v = np.concatenate([np.zeros_like(v_n3[:, :1]), v_n3], axis=-1)
  conj = q_n4 * np.array([1.0, -1.0, -1.0, -1.0])
  return _hamilton(_hamilton(q_n4, v), conj)[:, 1:] / np.sum(q_n4 * q_n4, axis=-1, keepdims=True)


def _scene(num: int, sh_degree: int = 1, seed: int = 0) -> gs.Gaussians:
  rng = np.random.default_rng(seed)
  f32 = lambda x: jnp.asarray(np.asarray(x, np.float32))
  return gs.Gaussians(
      means=f32(rng.standard_normal((num, 3))),
      log_scales=f32(rng.normal(-1.0, 0.5, (num, 3))),
      quats=f32(rng.standard_normal((num, 4)) * 3.0),  # deliberately not unit length
      opacity_logits=f32(rng.standard_normal(num) * 2.0),
      sh=f32(rng.standard_normal((num, (sh_degree + 1) ** 2, 3))),
      active=jnp.ones((num,), jnp.bool_),
  )


def test_rotation_matrices_are_rotations_matching_quaternion_algebra():
  q = np.random.default_rng(0).standard_normal((50, 4)) * np.exp(np.random.default_rng(1).uniform(-3, 3, (50, 1)))
  r = np.asarray(_rotations(jnp.asarray(np.float32(q))), np.float64)
  np.testing.assert_allclose(r @ np.swapaxes(r, -1, -2), np.broadcast_to(np.eye(3), r.shape), atol=2e-6)
  np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=2e-6)
  v = np.random.default_rng(2).standard_normal((50, 3))
  np.testing.assert_allclose(np.einsum("nij,nj->ni", r, v), _rotate_by_quaternion(q, v), rtol=1e-5, atol=1e-5)
  # q and -q are the same rotation (double cover).
  np.testing.assert_allclose(np.asarray(_rotations(jnp.asarray(np.float32(-q)))), r, atol=1e-6)


def test_known_rotations():
  theta = 0.7
  c, s = math.cos(theta), math.sin(theta)
  q = np.array([
      [math.cos(theta / 2), 0.0, 0.0, math.sin(theta / 2)],  # about z
      [math.cos(theta / 2), math.sin(theta / 2), 0.0, 0.0],  # about x
      [0.0, 0.0, 0.0, 0.0],  # zero quaternion reads as the identity
  ])
  expected = np.array([
      [[c, -s, 0], [s, c, 0], [0, 0, 1]],
      [[1, 0, 0], [0, c, -s], [0, s, c]],
      np.eye(3),
  ])
  np.testing.assert_allclose(np.asarray(_rotations(jnp.asarray(np.float32(q)))), expected, atol=1e-6)


def test_zero_quaternion_has_finite_gradient():
  grad = jax.jit(jax.grad(lambda q: jnp.sum(gs.rotation_matrices(q) * jnp.arange(9.0).reshape(3, 3))))
  assert np.all(np.isfinite(np.asarray(grad(jnp.zeros((1, 4), jnp.float32)))))
  rotations = gs.normalize_quaternions(jnp.zeros((2, 4)))
  np.testing.assert_array_equal(np.asarray(rotations), [[1, 0, 0, 0]] * 2)


def test_activations_and_properties():
  g = _scene(6, sh_degree=2)
  assert g.num == 6 and g.sh_degree == 2
  np.testing.assert_allclose(np.asarray(g.scales()), np.exp(np.asarray(g.log_scales)), rtol=1e-6)
  logits = np.asarray(g.opacity_logits, np.float64)
  np.testing.assert_allclose(np.asarray(g.opacities()), 1.0 / (1.0 + np.exp(-logits)), rtol=1e-6)
  unit = np.asarray(g.rotations())
  np.testing.assert_allclose(np.linalg.norm(unit, axis=-1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(unit * np.linalg.norm(g.quats, axis=-1, keepdims=True), g.quats, rtol=1e-5, atol=1e-6)
  bad = g.replace(sh=jnp.zeros((6, 5, 3)))
  with pytest.raises(ValueError, match=r"\(1, 4, 9, 16\)"):
    bad.sh_degree


def test_covariances_are_symmetric_psd_with_scale_eigenvalues():
  g = _scene(20)
  cov = np.asarray(jax.jit(lambda g: g.covariances())(g), np.float64)
  np.testing.assert_allclose(cov, np.swapaxes(cov, -1, -2), rtol=1e-6, atol=1e-7)
  assert np.all(np.linalg.eigvalsh(cov) > 0)
  # Sigma R = R S^2: the rotation's columns are eigenvectors with eigenvalues scale^2.
  q = np.asarray(g.quats, np.float64)
  r = np.stack([_rotate_by_quaternion(q, np.broadcast_to(e, (20, 3))) for e in np.eye(3)], axis=-1)
  s2 = np.exp(2.0 * np.asarray(g.log_scales, np.float64))
  np.testing.assert_allclose(cov @ r, r * s2[:, None, :], rtol=1e-4, atol=1e-6)


def test_pad_to_adds_inactive_slots_and_keeps_values():
  g = _scene(3)
  padded = g.pad_to(7)
  assert padded.num == 7 and padded.sh_degree == g.sh_degree
  np.testing.assert_array_equal(np.asarray(padded.active), [True] * 3 + [False] * 4)
  np.testing.assert_array_equal(np.asarray(padded.means[:3]), np.asarray(g.means))
  np.testing.assert_array_equal(np.asarray(padded.quats[3:]), [[1, 0, 0, 0]] * 4)
  with pytest.raises(ValueError, match="capacity"):
    g.pad_to(2)


def test_random_gaussians_follow_the_benchmark_distribution():
  g = gs.random_gaussians(jax.random.key(0), 20000, sh_degree=3)
  assert g.num == 20000 and g.sh_degree == 3 and g.means.dtype == jnp.float32
  assert np.all(np.asarray(g.active))
  means = np.asarray(g.means)
  np.testing.assert_allclose(means.mean(0), [0, 0, 6], atol=0.05)
  np.testing.assert_allclose(means.std(0), 1.5, rtol=0.03)
  np.testing.assert_allclose(np.asarray(g.log_scales).mean(), -4.0, atol=0.02)
  np.testing.assert_allclose(np.asarray(g.log_scales).std(), 0.5, rtol=0.03)
  np.testing.assert_allclose(np.linalg.norm(np.asarray(g.quats), axis=-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(g.opacity_logits).std(), 1.0, rtol=0.03)
  np.testing.assert_allclose(np.asarray(g.sh).std(), 0.3, rtol=0.03)


def test_from_point_cloud_on_a_lattice_uses_the_spacing_as_scale():
  # Every point of a cubic lattice (corners included) has 3 neighbours at the spacing.
  spacing = 0.25
  grid = np.stack(np.meshgrid(*[np.arange(4.0)] * 3, indexing="ij"), -1).reshape(-1, 3) * spacing + 10.0
  colors = np.random.default_rng(0).uniform(0, 1, grid.shape)
  g = gs.from_point_cloud(grid, colors, sh_degree=2, capacity=70, knn_chunk=5)  # 64 points: chunks of 5 pad
  assert g.num == 70 and g.sh_degree == 2
  np.testing.assert_array_equal(np.asarray(g.active), [True] * 64 + [False] * 6)
  np.testing.assert_allclose(np.asarray(g.log_scales[:64]), math.log(spacing), atol=1e-4)
  np.testing.assert_allclose(np.asarray(g.opacities()[:64]), 0.1, rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(g.quats[:64]), [[1, 0, 0, 0]] * 64)
  np.testing.assert_allclose(np.asarray(g.sh[:64, 0]) * 0.28209479177387814 + 0.5, colors, atol=1e-6)
  assert not np.any(np.asarray(g.sh[:, 1:]))


def test_from_point_cloud_matches_brute_force_neighbours():
  rng = np.random.default_rng(1)
  points = rng.standard_normal((37, 3)) * [1.0, 2.0, 0.5]
  points[5] = points[6]  # a duplicate: distance 0 is floored, not log(0)
  d2 = np.sum((points[:, None] - points[None]) ** 2, axis=-1)
  np.fill_diagonal(d2, np.inf)
  expected = 0.5 * np.log(np.maximum(np.sort(d2, axis=1)[:, :3].mean(1), 1e-7))
  g = gs.from_point_cloud(points, rng.uniform(0, 1, (37, 3)), sh_degree=0, knn_chunk=8)
  np.testing.assert_allclose(np.asarray(g.log_scales), np.repeat(expected[:, None], 3, 1), rtol=1e-4, atol=1e-4)


def test_from_point_cloud_bad_input():
  points = np.zeros((4, 3))
  with pytest.raises(ValueError, match="colors"):
    gs.from_point_cloud(points, np.zeros((3, 3)))
  with pytest.raises(ValueError, match="points"):
    gs.from_point_cloud(np.zeros((4, 2)), np.zeros((4, 2)))
  with pytest.raises(ValueError, match="at least 2"):
    gs.from_point_cloud(np.zeros((1, 3)), np.zeros((1, 3)))
  with pytest.raises(ValueError, match="non-finite"):
    gs.from_point_cloud(np.full((4, 3), np.nan), np.zeros((4, 3)))
  with pytest.raises(ValueError, match="initial_opacity"):
    gs.from_point_cloud(points, np.zeros((4, 3)), initial_opacity=1.0)
  with pytest.raises(ValueError, match="degree"):
    gs.from_point_cloud(points, np.zeros((4, 3)), sh_degree=4)

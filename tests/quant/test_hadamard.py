"""Tests for `jaxlab.quant.hadamard`: orthogonality and the weight rotations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.quant import hadamard

EPS = 1e-6


@pytest.mark.parametrize("n", [64, 96, 128, 256])
def test_orthogonal(n):
  q = np.asarray(hadamard.random_hadamard_matrix(n, jax.random.key(n)))
  assert q.shape == (n, n) and q.dtype == np.float32
  q64 = q.astype(np.float64)
  np.testing.assert_allclose(q64 @ q64.T, np.eye(n), atol=2e-6)
  np.testing.assert_allclose(q64.T @ q64, np.eye(n), atol=2e-6)


@pytest.mark.parametrize("n", [1, 2, 64, 256])
def test_power_of_two_is_a_sign_flipped_sylvester_matrix(n):
  """Q[i, j] = s_i (-1)^popcount(i & j) / sqrt(n): the Sylvester entry formula, one sign per row."""
  q = np.asarray(hadamard.random_hadamard_matrix(n, jax.random.key(1)), np.float64)
  i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
  parity = np.vectorize(lambda a: bin(a).count("1") % 2)(i & j)
  sylvester = np.where(parity == 1, -1.0, 1.0) / np.sqrt(n)
  signs = q[:, 0] * np.sqrt(n)
  np.testing.assert_allclose(np.abs(signs), 1.0, rtol=1e-6)
  np.testing.assert_allclose(q, np.sign(signs)[:, None] * sylvester, rtol=1e-6)
  if n >= 64:
    assert 0 < np.sum(signs > 0) < n  # The signs are random, not all equal.


def test_keys():
  a = hadamard.random_hadamard_matrix(96, jax.random.key(0))
  again = hadamard.random_hadamard_matrix(96, jax.random.key(0))
  np.testing.assert_array_equal(np.asarray(a), np.asarray(again))
  assert not np.allclose(np.asarray(a), np.asarray(hadamard.random_hadamard_matrix(96, jax.random.key(1))))
  legacy = hadamard.random_hadamard_matrix(8, jax.random.PRNGKey(0))  # Raw uint32 keys work too.
  assert legacy.shape == (8, 8)


def test_spreads_an_outlier_channel():
  """The point of the rotation: one huge channel is spread evenly over all channels."""
  n = 128
  x = np.random.default_rng(0).normal(size=(4, n)) * 0.01
  x[:, 5] = 100.0
  y = x @ np.asarray(hadamard.random_hadamard_matrix(n, jax.random.key(2)), np.float64)
  np.testing.assert_allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1), rtol=1e-6)
  assert np.abs(y).max() < 1.2 * np.linalg.norm(x, axis=1).max() / np.sqrt(n)


def _rms_norm(x, scale):
  return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * scale


def test_fuse_and_rotate_helpers():
  rng = np.random.default_rng(3)
  d, n = 96, 20
  x = rng.normal(size=(5, d))
  scale = rng.uniform(0.5, 1.5, d).astype(np.float32)
  w = rng.normal(size=(3, d, n)).astype(np.float32)  # A stack of experts.
  fused = np.asarray(hadamard.fuse_rms_norm_scale(jnp.asarray(scale), jnp.asarray(w)))
  assert fused.dtype == np.float32
  for e in range(3):
    np.testing.assert_allclose(_rms_norm(x, 1.0) @ fused[e], _rms_norm(x, scale) @ w[e], rtol=1e-5, atol=1e-5)
  q = np.asarray(hadamard.random_hadamard_matrix(d, jax.random.key(4)), np.float64)
  q32 = jnp.asarray(q, jnp.float32)
  rotated = np.asarray(hadamard.rotate_input_side(jnp.asarray(w), q32), np.float64)
  for e in range(3):
    np.testing.assert_allclose(rotated[e], q.T @ w[e], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose((x @ q) @ rotated[e], x @ w[e], rtol=1e-4, atol=1e-5)
  w_nd = rng.normal(size=(n, d)).astype(np.float32)
  bias_d = rng.normal(size=d).astype(np.float32)
  for rotate, a in ((hadamard.rotate_output_side, w_nd), (hadamard.rotate_output_side, bias_d),
                    (hadamard.rotate_embedding, w_nd)):
    np.testing.assert_allclose(np.asarray(rotate(jnp.asarray(a), q32)), a @ q, rtol=1e-5, atol=1e-6)
  bf16 = hadamard.rotate_input_side(jnp.asarray(w[0], jnp.bfloat16), q32)
  assert bf16.dtype == jnp.bfloat16


def test_errors():
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="n must be a positive int"):
    hadamard.random_hadamard_matrix(0, key)
  with pytest.raises(ValueError, match="norm_scale_d"):
    hadamard.fuse_rms_norm_scale(jnp.ones(8), jnp.ones((4, 3)))
  with pytest.raises(ValueError, match="q_dd"):
    hadamard.rotate_input_side(jnp.ones((8, 3)), jnp.eye(4))

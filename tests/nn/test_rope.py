"""Rotary embeddings: norm-preserving, and dot products depend only on relative position."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.nn import apply_rope


def _vectors(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def test_rotation_preserves_norms_and_position_zero_is_identity():
  x = _vectors(0, (2, 5, 3, 8))
  positions = jnp.broadcast_to(jnp.arange(5), (2, 5))
  y = apply_rope(x, positions)
  np.testing.assert_allclose(jnp.linalg.norm(y, axis=-1), jnp.linalg.norm(x, axis=-1), rtol=1e-5)
  np.testing.assert_allclose(y[:, 0], x[:, 0], rtol=1e-6)
  assert not np.allclose(y[:, 1:], x[:, 1:])


def test_query_key_products_depend_only_on_offset():
  q, k = _vectors(1, (1, 1, 1, 16)), _vectors(2, (1, 1, 1, 16))

  def score(pq, pk):
    rq = apply_rope(q, jnp.array([[pq]]))
    rk = apply_rope(k, jnp.array([[pk]]))
    return float(jnp.sum(rq * rk))

  assert score(7, 3) == pytest.approx(score(104, 100), rel=1e-4)
  assert score(7, 3) != pytest.approx(score(7, 4), rel=1e-3)


def test_odd_head_dim_is_rejected():
  with pytest.raises(ValueError, match="even head_dim"):
    apply_rope(jnp.zeros((1, 2, 1, 7)), jnp.zeros((1, 2)))

"""2-D rotary embeddings: relative in both grid axes, identity at the origin, grid layout."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.nn.rope2d import apply_rope_2d, grid_positions


def _vectors(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _score(q, k, q_pos, k_pos, base=100.0):
  """q . k after rotating q to q_pos = (row, col) and k to k_pos."""
  rq = apply_rope_2d(q, jnp.array([q_pos[0]]), jnp.array([q_pos[1]]), base=base)
  rk = apply_rope_2d(k, jnp.array([k_pos[0]]), jnp.array([k_pos[1]]), base=base)
  return float(jnp.sum(rq * rk))


def test_query_key_products_depend_only_on_the_offset():
  q, k = _vectors(0, (1, 1, 1, 16)), _vectors(1, (1, 1, 1, 16))
  reference = _score(q, k, (3, 5), (1, 2))
  assert _score(q, k, (13, -4), (11, -7)) == pytest.approx(reference, rel=1e-4)
  assert _score(q, k, (3.25, 5.5), (1.25, 2.5)) == pytest.approx(reference, rel=1e-4)  # fractional shift
  # Both axes matter: moving only the row, or only the column, of one token changes the score.
  assert _score(q, k, (4, 5), (1, 2)) != pytest.approx(reference, rel=1e-3)
  assert _score(q, k, (3, 6), (1, 2)) != pytest.approx(reference, rel=1e-3)


def test_rows_and_columns_rotate_separate_halves():
  x = _vectors(2, (1, 1, 2, 8))
  by_row = apply_rope_2d(x, jnp.array([2.0]), jnp.array([0.0]), base=100.0)
  by_col = apply_rope_2d(x, jnp.array([0.0]), jnp.array([2.0]), base=100.0)
  np.testing.assert_allclose(by_row[..., 4:], x[..., 4:], rtol=1e-6)
  np.testing.assert_allclose(by_col[..., :4], x[..., :4], rtol=1e-6)
  assert not np.allclose(by_row[..., :4], x[..., :4])
  assert not np.allclose(by_col[..., 4:], x[..., 4:])


def test_origin_is_identity_and_rotation_preserves_norms():
  x = _vectors(3, (2, 6, 3, 8))
  rows_t, cols_t = grid_positions(2, 3)
  y = apply_rope_2d(x, rows_t, cols_t, base=100.0)
  assert y.shape == x.shape and y.dtype == x.dtype
  np.testing.assert_allclose(y[:, 0], x[:, 0], rtol=1e-6)
  np.testing.assert_allclose(jnp.linalg.norm(y, axis=-1), jnp.linalg.norm(x, axis=-1), rtol=1e-5)
  assert not np.allclose(y[:, 1:], x[:, 1:])


def test_grid_positions_are_row_major():
  rows_t, cols_t = grid_positions(2, 3)
  np.testing.assert_array_equal(rows_t, [0, 0, 0, 1, 1, 1])
  np.testing.assert_array_equal(cols_t, [0, 1, 2, 0, 1, 2])
  assert rows_t.dtype == jnp.float32


def test_bad_arguments_are_rejected():
  with pytest.raises(ValueError, match="divisible by 4"):
    apply_rope_2d(jnp.zeros((1, 2, 1, 6)), jnp.zeros(2), jnp.zeros(2), base=100.0)
  with pytest.raises(ValueError, match=r"rows_t must have shape \(2,\)"):
    apply_rope_2d(jnp.zeros((1, 2, 1, 8)), jnp.zeros(3), jnp.zeros(2), base=100.0)
  with pytest.raises(ValueError, match="base"):
    apply_rope_2d(jnp.zeros((1, 2, 1, 8)), jnp.zeros(2), jnp.zeros(2), base=0.0)
  with pytest.raises(ValueError, match="w_tokens"):
    grid_positions(2, 0)

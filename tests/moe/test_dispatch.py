"""Tests for sort-based dispatch: order, group sizes, ties, permute/combine against numpy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.moe import combine, permute, sort_by_expert


def _random_routing(seed, tokens=20, top_k=2, num_experts=5):
  rng = np.random.default_rng(seed)
  experts_tk = np.stack([rng.choice(num_experts, top_k, replace=False) for _ in range(tokens)]).astype(np.int32)
  return rng, experts_tk


def test_sort_by_expert_matches_numpy_stable_argsort():
  _, experts_tk = _random_routing(0)
  dispatch = sort_by_expert(jnp.asarray(experts_tk), 5)
  want_order = np.argsort(experts_tk.ravel(), kind="stable")
  np.testing.assert_array_equal(dispatch.order_r, want_order)
  np.testing.assert_array_equal(dispatch.group_sizes_e, np.bincount(experts_tk.ravel(), minlength=5))
  np.testing.assert_array_equal(dispatch.token_of_row_r, want_order // 2)
  assert dispatch.group_sizes_e.dtype == jnp.int32 and dispatch.order_r.dtype == jnp.int32


def test_sort_by_expert_ties_keep_token_then_slot_order():
  # Flattened pairs: (t0,s0)=1 (t0,s1)=0 (t1,s0)=1 (t1,s1)=0 (t2,s0)=0 (t2,s1)=1.
  dispatch = sort_by_expert(jnp.array([[1, 0], [1, 0], [0, 1]]), 3)
  np.testing.assert_array_equal(dispatch.order_r, [1, 3, 4, 0, 2, 5])
  np.testing.assert_array_equal(dispatch.token_of_row_r, [0, 1, 2, 0, 1, 2])
  np.testing.assert_array_equal(dispatch.group_sizes_e, [3, 3, 0])  # An unused expert has size 0.


def test_permute_groups_rows_by_expert():
  rng, experts_tk = _random_routing(1)
  x_td = rng.normal(size=(20, 3)).astype(np.float32)
  dispatch = sort_by_expert(jnp.asarray(experts_tk), 5)
  x_rd = np.asarray(permute(jnp.asarray(x_td), dispatch))
  expert_of_row = experts_tk.ravel()[np.asarray(dispatch.order_r)]
  assert np.all(np.diff(expert_of_row) >= 0)
  # Group e holds exactly the tokens that chose e, in token order.
  start = 0
  for e, size in enumerate(np.asarray(dispatch.group_sizes_e)):
    tokens = [t for t in range(20) if e in experts_tk[t]]
    np.testing.assert_array_equal(x_rd[start:start + size], x_td[tokens])
    start += size


def test_combine_weighted_sum_matches_loop():
  rng, experts_tk = _random_routing(2, top_k=3, num_experts=6)
  x_td = rng.normal(size=(20, 4)).astype(np.float32)
  weights_tk = rng.uniform(size=(20, 3)).astype(np.float32)
  dispatch = sort_by_expert(jnp.asarray(experts_tk), 6)
  # A stand-in "expert": scale each row by (its expert id + 1).
  expert_of_row = experts_tk.ravel()[np.asarray(dispatch.order_r)]
  y_rd = permute(jnp.asarray(x_td), dispatch) * jnp.asarray(expert_of_row + 1, jnp.float32)[:, None]
  y_td = combine(y_rd, dispatch, jnp.asarray(weights_tk))
  want_td = np.zeros_like(x_td, dtype=np.float64)
  for t in range(20):
    for j in range(3):
      want_td[t] += weights_tk[t, j] * (experts_tk[t, j] + 1) * x_td[t]
  np.testing.assert_allclose(y_td, want_td, rtol=1e-5, atol=1e-6)


def test_permute_combine_round_trip_and_dtype():
  rng, experts_tk = _random_routing(3, top_k=2)
  x_td = jnp.asarray(rng.normal(size=(20, 8)), jnp.bfloat16)
  dispatch = sort_by_expert(jnp.asarray(experts_tk), 5)
  y_td = combine(permute(x_td, dispatch), dispatch, jnp.full((20, 2), 0.5))
  assert y_td.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(y_td, np.float32), np.asarray(x_td, np.float32))


def test_dispatch_works_under_jit_and_grad():
  rng, experts_tk = _random_routing(4)
  x_td = jnp.asarray(rng.normal(size=(20, 3)), jnp.float32)
  weights_tk = jnp.asarray(rng.uniform(size=(20, 2)), jnp.float32)

  def f(x, w):
    dispatch = sort_by_expert(jnp.asarray(experts_tk), 5)
    return jnp.sum(combine(permute(x, dispatch) * 2.0, dispatch, w))

  gx, gw = jax.jit(jax.grad(f, argnums=(0, 1)))(x_td, weights_tk)
  # d/dx[t] = 2 * sum_j w[t, j] (every column); d/dw[t, j] = 2 * sum_d x[t, d].
  want_gx = 2.0 * np.repeat(np.asarray(weights_tk).sum(1, keepdims=True), 3, axis=1)
  want_gw = 2.0 * np.repeat(np.asarray(x_td).sum(1, keepdims=True), 2, axis=1)
  np.testing.assert_allclose(gx, want_gx, rtol=1e-6)
  np.testing.assert_allclose(gw, want_gw, rtol=1e-5)


def test_dispatch_rejects_bad_arguments():
  with pytest.raises(ValueError, match=r"\[T, k\]"):
    sort_by_expert(jnp.zeros((4,), jnp.int32), 3)
  with pytest.raises(TypeError, match="integer"):
    sort_by_expert(jnp.zeros((4, 1)), 3)
  with pytest.raises(ValueError, match="num_experts"):
    sort_by_expert(jnp.zeros((4, 1), jnp.int32), 0)
  dispatch = sort_by_expert(jnp.zeros((4, 2), jnp.int32), 3)
  with pytest.raises(ValueError, match="x_td"):
    permute(jnp.zeros((4,)), dispatch)
  with pytest.raises(ValueError, match="y_rd"):
    combine(jnp.zeros((7, 2)), dispatch, jnp.ones((4, 2)))
  with pytest.raises(ValueError, match="weights_tk"):
    combine(jnp.zeros((8, 2)), dispatch, jnp.ones((3, 2)))

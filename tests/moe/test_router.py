"""Tests for top-k routing and the router's auxiliary losses against numpy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.moe import load_balancing_loss, route_top_k, router_z_loss, routing_aux
from tests.moe import naive


@pytest.mark.parametrize("top_k", [1, 2, 3])
@pytest.mark.parametrize("renormalize", [True, False])
def test_route_top_k_matches_numpy(top_k, renormalize):
  logits_te = np.random.default_rng(top_k).normal(size=(24, 6)).astype(np.float32) * 2
  weights_tk, experts_tk, probs_te = route_top_k(jnp.asarray(logits_te), top_k, renormalize=renormalize)
  want_w, want_e, want_p = naive.route_np(logits_te, top_k, renormalize)
  assert weights_tk.dtype == jnp.float32 and experts_tk.dtype == jnp.int32 and probs_te.dtype == jnp.float32
  np.testing.assert_array_equal(experts_tk, want_e)
  np.testing.assert_allclose(weights_tk, want_w, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(probs_te, want_p, rtol=1e-6, atol=1e-7)
  if renormalize:
    np.testing.assert_allclose(np.sum(weights_tk, axis=-1), 1.0, rtol=1e-6)


def test_route_top_k_bfloat16_logits_softmax_in_float32():
  logits_te = jnp.asarray(np.random.default_rng(0).normal(size=(8, 4)), jnp.bfloat16)
  _, _, probs_te = route_top_k(logits_te, 2, renormalize=False)
  np.testing.assert_allclose(probs_te, naive.softmax_np(np.asarray(logits_te, np.float32)), rtol=1e-6)


def test_route_top_k_ties_go_to_lower_expert():
  logits_te = jnp.array([[0.0, 1.0, 1.0, 1.0], [2.0, 2.0, 0.0, 2.0]])
  _, experts_tk, _ = route_top_k(logits_te, 2, renormalize=True)
  np.testing.assert_array_equal(experts_tk, [[1, 2], [0, 1]])


def test_route_top_k_rejects_bad_arguments():
  logits_te = jnp.zeros((4, 3))
  for top_k in (0, 4, 1.0, True):
    with pytest.raises(ValueError, match="top_k"):
      route_top_k(logits_te, top_k, renormalize=True)
  with pytest.raises(ValueError, match=r"\[T, E\]"):
    route_top_k(jnp.zeros((3,)), 1, renormalize=True)
  with pytest.raises(TypeError, match="float"):
    route_top_k(jnp.zeros((4, 3), jnp.int32), 1, renormalize=True)


def test_load_balancing_loss_by_hand():
  # counts: expert 0 twice, expert 1 once, expert 2 once over T=2 tokens with k=2:
  # fractions [1, 0.5, 0.5]; mean probs [0.3, 0.45, 0.25];
  # loss = 3 * (1 * 0.3 + 0.5 * 0.45 + 0.5 * 0.25) = 3 * 0.65 = 1.95.
  probs_te = jnp.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
  experts_tk = jnp.array([[0, 1], [2, 0]])
  np.testing.assert_allclose(load_balancing_loss(probs_te, experts_tk, 3), 1.95, rtol=1e-6)


def test_load_balancing_loss_matches_transformers_formula_and_uniform_gives_k():
  rng = np.random.default_rng(1)
  probs_te = naive.softmax_np(rng.normal(size=(40, 8)))
  experts_tk = np.argsort(-probs_te, axis=-1)[:, :3]
  got = load_balancing_loss(jnp.asarray(probs_te, jnp.float32), jnp.asarray(experts_tk), 8)
  np.testing.assert_allclose(got, naive.balance_loss_np(probs_te, experts_tk, 8), rtol=1e-5)
  # Uniform probabilities and perfectly balanced assignments: k, not 1 (the transformers convention).
  uniform_te = jnp.full((8, 4), 0.25)
  balanced_tk = jnp.array([[t % 4, (t + 1) % 4] for t in range(8)])
  np.testing.assert_allclose(load_balancing_loss(uniform_te, balanced_tk, 4), 2.0, rtol=1e-6)


def test_load_balancing_loss_rejects_mismatched_shapes():
  with pytest.raises(ValueError, match="num_experts"):
    load_balancing_loss(jnp.zeros((4, 3)), jnp.zeros((4, 1), jnp.int32), 5)
  with pytest.raises(ValueError, match="experts_tk"):
    load_balancing_loss(jnp.zeros((4, 3)), jnp.zeros((5, 1), jnp.int32), 3)


def test_router_z_loss_matches_numpy():
  logits_te = np.random.default_rng(2).normal(size=(10, 5)) * 3
  lse_t = np.log(np.exp(logits_te).sum(axis=-1))
  np.testing.assert_allclose(router_z_loss(jnp.asarray(logits_te, jnp.float32)), np.mean(lse_t**2), rtol=1e-5)


def test_routing_aux_matches_the_separate_functions():
  logits_te = jnp.asarray(np.random.default_rng(3).normal(size=(16, 6)), jnp.float32)

  @jax.jit
  def route_and_summarize(logits_te):
    _, experts_tk, probs_te = route_top_k(logits_te, 2, renormalize=False)
    return experts_tk, probs_te, routing_aux(logits_te, probs_te, experts_tk)

  experts_tk, probs_te, aux = route_and_summarize(logits_te)
  np.testing.assert_array_equal(aux.tokens_per_expert, np.bincount(np.asarray(experts_tk).ravel(), minlength=6))
  assert aux.tokens_per_expert.dtype == jnp.int32
  np.testing.assert_allclose(aux.router_probs_mean, np.asarray(probs_te).mean(axis=0), rtol=1e-6)
  np.testing.assert_allclose(
      aux.load_balancing_loss, naive.balance_loss_np(np.asarray(probs_te), np.asarray(experts_tk), 6), rtol=1e-5
  )
  np.testing.assert_allclose(aux.router_z_loss, router_z_loss(logits_te), rtol=1e-6)


def test_load_balancing_loss_gradient_flows_through_probs_only():
  logits_te = jnp.asarray(np.random.default_rng(4).normal(size=(6, 4)), jnp.float32)
  experts_tk = jnp.array([[0], [1], [1], [2], [3], [3]])
  grad = jax.grad(lambda p: load_balancing_loss(p, experts_tk, 4))(jax.nn.softmax(logits_te))
  counts_e = np.bincount(np.asarray(experts_tk).ravel(), minlength=4)
  # d/dp[t, e] of E * sum_e (c_e / T) * mean_t p[t, e] = E * c_e / T^2, for every token t.
  np.testing.assert_allclose(grad, np.broadcast_to(4 * counts_e / 36, (6, 4)), rtol=1e-6)

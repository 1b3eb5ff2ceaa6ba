"""Post-training losses: hand-computable values, limits, masks and gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.posttrain import (
    BcoState, MpoWeights, bco_pair_loss, dpo_loss, generation_loss, group_advantages, grpo_loss, k3_kl, mask_after_eos,
    mpo_loss, sequence_logprobs, token_logprobs)


def test_dpo_is_log2_when_chosen_and_rejected_tie_and_follows_the_margin():
  x = jnp.array([-3.0, -7.5])
  np.testing.assert_allclose(dpo_loss(x, x, x - 1, x - 1), math.log(2), rtol=1e-6)
  # margin m = (pc - rc) - (pr - rr) = (-1 - -2) - (-4 - -3) = 2; loss = log(1 + exp(-beta m)).
  value = dpo_loss(jnp.array([-1.0]), jnp.array([-4.0]), jnp.array([-2.0]), jnp.array([-3.0]), beta=0.5)
  np.testing.assert_allclose(value, [math.log1p(math.exp(-1.0))], rtol=1e-6)
  # beta -> 0: log 2 - beta * m / 2 to first order.
  small = dpo_loss(jnp.array([-1.0]), jnp.array([-4.0]), jnp.array([-2.0]), jnp.array([-3.0]), beta=1e-4)
  np.testing.assert_allclose(small, [math.log(2) - 1e-4 * 2 / 2], rtol=1e-6)


def test_bco_pair_takes_the_batch_into_the_running_mean_then_uses_it():
  pc, pr, rc, rr = jnp.array([-1.0, -2.0]), jnp.array([-3.0, -3.0]), jnp.array([-1.5, -2.5]), jnp.array([-2.0, -2.0])
  state = BcoState.init()
  loss, state = bco_pair_loss(pc, pr, rc, rr, state, beta=1.0)
  rewards_c, rewards_r = np.array([0.5, 0.5]), np.array([-1.0, -1.0])
  delta = -0.25  # mean of (0.5, 0.5, -1, -1): the first batch's own mean
  expected = np.log1p(np.exp(-(rewards_c - delta))) + np.log1p(np.exp(rewards_r - delta))
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  np.testing.assert_allclose(state.delta, delta, rtol=1e-6)
  loss, state = bco_pair_loss(pc + 1, pr + 1, rc, rr, state, beta=1.0)
  delta = (-0.25 + 0.75) / 2  # one count per batch
  np.testing.assert_allclose(state.delta, delta, rtol=1e-6)
  expected = np.log1p(np.exp(-(rewards_c + 1 - delta))) + np.log1p(np.exp(rewards_r + 1 - delta))
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  assert int(state.count) == 2


def test_generation_loss_is_the_token_mean_nll_and_zero_for_an_empty_response():
  logprobs = jnp.array([[0.0, -1.0, -2.0, -9.0], [0.0, -5.0, 0.0, 0.0]])
  mask = jnp.array([[0, 1, 1, 0], [0, 0, 0, 0]])
  np.testing.assert_allclose(generation_loss(logprobs, mask), [1.5, 0.0])


def test_mpo_combines_the_three_terms_with_internvl3s_weights():
  pc, pr, rc, rr = jnp.array([-1.0]), jnp.array([-4.0]), jnp.array([-2.0]), jnp.array([-3.0])
  token_lp, mask = jnp.array([[0.0, -1.0, -3.0]]), jnp.array([[0, 1, 1]])
  total, terms, state = mpo_loss(pc, pr, rc, rr, token_lp, mask, BcoState.init())
  w = MpoWeights()
  assert (w.preference, w.quality, w.generation, w.beta) == (0.8, 0.2, 1.0, 0.1)
  expected = 0.8 * terms["preference"] + 0.2 * terms["quality"] + 1.0 * terms["generation"]
  np.testing.assert_allclose(total, expected, rtol=1e-6)
  np.testing.assert_allclose(terms["generation"], 2.0, rtol=1e-6)
  np.testing.assert_allclose(terms["preference"], dpo_loss(pc, pr, rc, rr)[0], rtol=1e-6)
  assert int(state.count) == 1


def test_token_logprobs_read_the_previous_position_and_masks_stop_after_eos():
  logits = jax.random.normal(jax.random.key(0), (2, 5, 7))
  tokens = jnp.array([[1, 2, 6, 3, 6], [4, 6, 6, 6, 0]])
  lp = token_logprobs(logits, tokens)
  expected = jax.nn.log_softmax(logits[0, 1])[6]
  np.testing.assert_allclose(lp[0, 2], expected, rtol=1e-6)
  assert float(lp[0, 0]) == 0.0
  response = jnp.array([[0, 0, 1, 1, 1], [0, 1, 1, 1, 1]], bool)
  cut = mask_after_eos(response, tokens, eos_id=6)
  np.testing.assert_array_equal(cut, [[0, 0, 1, 0, 0], [0, 1, 0, 0, 0]])
  total, per_token = sequence_logprobs(logits, tokens, cut)
  np.testing.assert_allclose(total, [lp[0, 2], lp[1, 1]], rtol=1e-6)
  assert float(jnp.abs(per_token * ~cut).max()) == 0.0


def test_equal_rewards_give_zero_advantage_and_the_unbiased_std_is_used():
  adv = group_advantages(jnp.array([[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 2.0, 3.0]]))
  assert not bool(jnp.any(jnp.isnan(adv)))
  np.testing.assert_array_equal(adv[0], 0.0)
  std = np.std([0, 1, 2, 3], ddof=1)
  np.testing.assert_allclose(adv[1], (np.arange(4) - 1.5) / (std + 1e-4), rtol=1e-6)
  with pytest.raises(ValueError, match="at least 2 completions"):
    group_advantages(jnp.ones((3, 1)))


def test_k3_kl_is_zero_at_equality_and_positive_elsewhere():
  lp = jnp.array([-1.0, -2.0, -0.5])
  np.testing.assert_allclose(k3_kl(lp, lp), 0.0, atol=1e-7)
  assert bool(jnp.all(k3_kl(lp, lp + jnp.array([0.3, -0.7, 1.1])) > 0))


def test_grpo_gradient_is_the_advantage_weighted_score_plus_kl_and_matches_finite_differences():
  rng = np.random.default_rng(0)
  policy = jnp.asarray(rng.normal(-1.5, 0.3, (4, 6)), jnp.float32)
  ref = jnp.asarray(rng.normal(-1.5, 0.3, (4, 6)), jnp.float32)
  adv = jnp.array([1.0, -0.5, 0.2, 0.0])
  mask = jnp.asarray(rng.uniform(size=(4, 6)) > 0.3)
  loss, _ = grpo_loss(policy, ref, adv, mask, beta=0.04)
  # With the ratio at 1 the value is beta * mean KL; the gradient is -A / n_i + beta * dKL / n_i per token.
  counts = np.maximum(np.asarray(mask).sum(1), 1)
  kl = np.asarray(k3_kl(policy, ref))
  np.testing.assert_allclose(loss, np.mean((0.04 * kl * np.asarray(mask)).sum(1) / counts - np.asarray(adv)), rtol=1e-5)
  grad = jax.grad(lambda p: grpo_loss(p, ref, adv, mask, beta=0.04)[0])(policy)
  dkl = 1.0 - np.exp(np.asarray(ref - policy))  # d/dlogp of exp(ref - lp) - (ref - lp) - 1
  expected = (-np.asarray(adv)[:, None] + 0.04 * dkl) * np.asarray(mask) / counts[:, None] / 4
  np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-7)


def test_grpo_clipping_needs_both_arguments_and_clips_the_ratio():
  lp = jnp.zeros((1, 2))
  with pytest.raises(ValueError, match="both old_logprobs_nt and clip_epsilon"):
    grpo_loss(lp, lp, jnp.ones(1), jnp.ones((1, 2)), clip_epsilon=0.2)
  # ratio e^1 with a positive advantage is clipped at 1.2: no gradient flows through it.
  grad = jax.grad(lambda p: grpo_loss(p, p, jnp.ones(1), jnp.ones((1, 2)), beta=0.0, old_logprobs_nt=lp - 1.0,
                                      clip_epsilon=0.2)[0])(lp)
  np.testing.assert_allclose(grad, 0.0, atol=1e-7)


def test_dpo_gradient_matches_finite_differences():
  args = [jnp.array([-1.0, -2.0]), jnp.array([-3.0, -1.0]), jnp.array([-1.5, -2.5]), jnp.array([-2.0, -2.0])]
  f = lambda pc: jnp.sum(dpo_loss(pc, *args[1:], beta=0.3))
  grad = jax.grad(f)(args[0])
  eps = 1e-3
  numeric = [(f(args[0].at[i].add(eps)) - f(args[0].at[i].add(-eps))) / (2 * eps) for i in range(2)]
  np.testing.assert_allclose(grad, numeric, rtol=1e-3)

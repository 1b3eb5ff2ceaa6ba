"""sft_loss: each weighting against hand-computed values; empty samples; bad arguments."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.vlm.sft_loss import sft_loss


def _example():
  """Logits chosen so each token's cross entropy is a known number: CE = log(V) for uniform logits,
  and ~0 for a very confident correct logit."""
  v = 4
  logits = np.zeros((2, 4, v), np.float32)
  targets = np.zeros((2, 4), np.int32)
  # Sample 0: tokens 0, 1 supervised, uniform -> CE = log 4 each.
  # Sample 1: tokens 0, 1, 2, 3 supervised; token 0 uniform (log 4), the rest confidently right (CE 0).
  logits[1, 1:, 0] = 100.0
  mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], np.float32)
  # An unsupervised but huge-CE token must not count.
  logits[0, 2, 1] = 100.0
  return jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(mask)


def test_token_weighting_is_mean_over_supervised_tokens():
  loss, metrics = sft_loss(*_example(), weighting="token")
  # CE: sample 0 -> [log4, log4], sample 1 -> [log4, 0, 0, 0]; 6 tokens.
  np.testing.assert_allclose(float(loss), 3 * np.log(4) / 6, rtol=1e-5)
  assert float(metrics["supervised_tokens"]) == 6


def test_sqrt_weighting():
  loss, _ = sft_loss(*_example(), weighting="sqrt")
  w0, w1 = 1 / np.sqrt(2), 1 / np.sqrt(4)
  expected = (w0 * 2 * np.log(4) + w1 * np.log(4)) / (2 * w0 + 4 * w1)
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_sample_weighting_is_mean_of_per_sample_means():
  loss, _ = sft_loss(*_example(), weighting="sample")
  expected = (np.log(4) + np.log(4) / 4) / 2
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


@pytest.mark.parametrize("weighting", ["token", "sqrt", "sample"])
def test_sample_without_supervised_tokens_contributes_nothing(weighting):
  logits, targets, mask = _example()
  base, _ = sft_loss(logits, targets, mask, weighting=weighting)
  # A third sample with wild logits and no supervised token.
  extra_logits = jnp.concatenate([logits, 50.0 * jnp.ones((1, 4, 4)).at[0, :, 0].set(-50.0)])
  extra_targets = jnp.concatenate([targets, jnp.zeros((1, 4), jnp.int32)])
  extra_mask = jnp.concatenate([mask, jnp.zeros((1, 4))])
  loss, _ = sft_loss(extra_logits, extra_targets, extra_mask, weighting=weighting)
  assert np.isfinite(float(loss))
  np.testing.assert_allclose(float(loss), float(base), rtol=1e-6)
  empty, _ = sft_loss(logits, targets, jnp.zeros_like(mask), weighting=weighting)
  assert float(empty) == 0.0


def test_weightings_differ_and_order():
  # Sample 0 (short, high CE) weighs most under "sample", least under "token".
  losses = [float(sft_loss(*_example(), weighting=w)[0]) for w in ("token", "sqrt", "sample")]
  assert losses[0] < losses[1] < losses[2]


def test_bad_arguments():
  logits, targets, mask = _example()
  with pytest.raises(ValueError, match="'mean'"):
    sft_loss(logits, targets, mask, weighting="mean")
  with pytest.raises(ValueError, match="loss_mask shape"):
    sft_loss(logits, targets, mask[:, :3], weighting="token")
  with pytest.raises(ValueError, match="targets"):
    sft_loss(logits, targets[:, :3], mask, weighting="token")

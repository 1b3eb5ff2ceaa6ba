"""GRPO's group advantages and per-token loss (TRL 0.14 style, as Visual-ARFT trains).

For G completions of one prompt with rewards R_i:

  A_i = (R_i - mean_G R) / (std_G R + 1e-4)          unbiased std (ddof = 1)
  loss_t = -[exp(logp_t - sg(logp_t)) * A_i - beta * KL_t]
  KL_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1  (the k3 estimator, >= 0)

averaged over each completion's tokens (up to and including its first EOS), then over the
batch. With one update per sampled batch the ratio is exactly 1 and only its gradient
matters; `clip_epsilon` adds PPO's clipped ratio against the sampling policy's log-probs
for several updates per batch.
"""

import jax
import jax.numpy as jnp

ADVANTAGE_EPS = 1e-4
DEFAULT_BETA = 0.04  # TRL 0.14's GRPOConfig default


def group_advantages(rewards_bg: jax.Array) -> jax.Array:
  """[B, G] advantages within each prompt's group; a group of equal rewards gives 0 (no NaN)."""
  rewards_bg = rewards_bg.astype(jnp.float32)
  group = rewards_bg.shape[-1]
  if group < 2:
    raise ValueError(f"GRPO needs at least 2 completions per prompt for the unbiased std; got {group}")
  mean = jnp.mean(rewards_bg, axis=-1, keepdims=True)
  std = jnp.std(rewards_bg, axis=-1, keepdims=True, ddof=1)
  return (rewards_bg - mean) / (std + ADVANTAGE_EPS)


def k3_kl(policy_logprobs: jax.Array, ref_logprobs: jax.Array) -> jax.Array:
  """exp(ref - logp) - (ref - logp) - 1 elementwise: an unbiased, non-negative KL estimate."""
  diff = ref_logprobs - policy_logprobs
  return jnp.exp(diff) - diff - 1.0


def grpo_loss(policy_logprobs_nt: jax.Array, ref_logprobs_nt: jax.Array, advantages_n: jax.Array, mask_nt: jax.Array, *,
              beta: float = DEFAULT_BETA, old_logprobs_nt: jax.Array | None = None,
              clip_epsilon: float | None = None) -> tuple[jax.Array, dict]:
  """(scalar loss, metrics) over N = B * G completions of T tokens.

  Args:
    policy_logprobs_nt: log-probs of the sampled tokens under the policy being trained.
    ref_logprobs_nt: the same under the frozen reference.
    advantages_n: per completion (`group_advantages(...).reshape(-1)`).
    mask_nt: completion tokens up to and including the first EOS.
    old_logprobs_nt, clip_epsilon: PPO clipping against the sampling policy, for several
      updates per batch; both None (the default) is TRL 0.14's single update.
  """
  mask = mask_nt.astype(jnp.float32)
  if (old_logprobs_nt is None) != (clip_epsilon is None):
    raise ValueError("pass both old_logprobs_nt and clip_epsilon for clipped updates, or neither")
  advantages = advantages_n[:, None]
  if old_logprobs_nt is None:
    ratio = jnp.exp(policy_logprobs_nt - jax.lax.stop_gradient(policy_logprobs_nt))
    policy_term = ratio * advantages
  else:
    ratio = jnp.exp(policy_logprobs_nt - old_logprobs_nt)
    policy_term = jnp.minimum(ratio * advantages, jnp.clip(ratio, 1 - clip_epsilon, 1 + clip_epsilon) * advantages)
  kl = k3_kl(policy_logprobs_nt, ref_logprobs_nt)
  per_token = -(policy_term - beta * kl)
  per_completion = jnp.sum(per_token * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)
  mean_kl = jnp.sum(jnp.sum(kl * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)) / kl.shape[0]
  return jnp.mean(per_completion), {"kl": mean_kl, "completion_tokens": jnp.sum(mask) / mask.shape[0]}

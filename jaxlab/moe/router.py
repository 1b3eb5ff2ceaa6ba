"""Top-k softmax routing and the router's auxiliary losses (load balancing, z-loss)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp


class MoEAux(NamedTuple):
  """Router statistics of one MoE layer call, over all its tokens (all shards).

  Attributes:
    load_balancing_loss: float32 scalar, see `load_balancing_loss`.
    router_z_loss: float32 scalar, see `router_z_loss`.
    tokens_per_expert: [E] int32 (token, slot) assignments per expert (calibration, monitoring).
    router_probs_mean: [E] float32 router probability per expert, averaged over tokens.
  """

  load_balancing_loss: jax.Array
  router_z_loss: jax.Array
  tokens_per_expert: jax.Array
  router_probs_mean: jax.Array


def _check_logits(logits_te: jax.Array, name: str = "logits_te") -> None:
  if logits_te.ndim != 2:
    raise ValueError(f"{name} must have shape [T, E] (tokens, experts), got shape {logits_te.shape}")
  if not jnp.issubdtype(logits_te.dtype, jnp.floating):
    raise TypeError(f"{name} must be a float array, got {logits_te.dtype}")


def route_top_k(
    logits_te: jax.Array, top_k: int, *, renormalize: bool
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Softmax over experts in float32, then each token's `top_k` most probable experts.

  Args:
    logits_te: [T, E] router logits.
    top_k: experts per token, 1 <= top_k <= E.
    renormalize: divide each token's k weights by their sum, so they add up to 1
      (Mixtral, Qwen3 `norm_topk_prob=True`); otherwise keep the raw softmax probabilities
      (Qwen2-MoE, DeepSeek).

  Returns:
    (weights_tk float32, experts_tk int32, probs_te float32): the k weights and expert ids per
    token, most probable first (ties go to the lower expert id), and the full softmax.
  """
  _check_logits(logits_te)
  num_experts = logits_te.shape[1]
  if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= num_experts:
    raise ValueError(f"top_k must be an int in [1, {num_experts}] (number of experts), got {top_k!r}")
  probs_te = jax.nn.softmax(logits_te.astype(jnp.float32), axis=-1)
  weights_tk, experts_tk = jax.lax.top_k(probs_te, top_k)
  if renormalize:
    weights_tk = weights_tk / jnp.sum(weights_tk, axis=-1, keepdims=True)
  return weights_tk, experts_tk.astype(jnp.int32), probs_te


def balance_loss_from_stats(tokens_per_expert_e: jax.Array, probs_mean_e: jax.Array, num_tokens) -> jax.Array:
  """`load_balancing_loss` from its sufficient statistics (sums that shards can add up).

  Args:
    tokens_per_expert_e: [E] (token, slot) assignments per expert, over all T tokens.
    probs_mean_e: [E] router probability per expert, averaged over the T tokens.
    num_tokens: T.
  """
  num_experts = tokens_per_expert_e.shape[0]
  fraction_e = tokens_per_expert_e.astype(jnp.float32) / num_tokens
  return num_experts * jnp.sum(fraction_e * probs_mean_e.astype(jnp.float32))


def load_balancing_loss(probs_te: jax.Array, experts_tk: jax.Array, num_experts: int) -> jax.Array:
  """Auxiliary load-balancing loss, E * sum_e (count_e / T) * mean_t probs[t, e].

  count_e is the number of (token, slot) assignments to expert e, so the k slots of a token
  all count. This is the convention of Hugging Face transformers' `load_balancing_loss_func`
  (Mixtral, Qwen2-MoE, Qwen3-MoE): perfectly uniform routing gives k, not 1. Switch
  Transformer's loss uses the fraction of *tokens* (top-1) and gives 1; for k > 1 the two
  differ by the factor k, so divide by k to compare with Switch-style coefficients.

  Args:
    probs_te: [T, E] router softmax (float32).
    experts_tk: [T, k] int expert ids chosen per token.
    num_experts: E.

  Returns:
    float32 scalar; differentiable w.r.t. probs_te (the counts are constants).
  """
  _check_logits(probs_te, "probs_te")
  if probs_te.shape[1] != num_experts:
    raise ValueError(f"probs_te has {probs_te.shape[1]} experts but num_experts={num_experts}")
  if experts_tk.ndim != 2 or experts_tk.shape[0] != probs_te.shape[0]:
    raise ValueError(
        f"experts_tk must have shape [T={probs_te.shape[0]}, k] like probs_te's tokens, got {experts_tk.shape}"
    )
  counts_e = jnp.bincount(experts_tk.reshape(-1), length=num_experts)
  return balance_loss_from_stats(counts_e, jnp.mean(probs_te.astype(jnp.float32), axis=0), probs_te.shape[0])


def router_z_loss(logits_te: jax.Array) -> jax.Array:
  """Router z-loss (ST-MoE): mean over tokens of logsumexp(logits)^2, in float32.

  Keeps the router logits small, which keeps the float32 softmax away from overflow.
  """
  _check_logits(logits_te)
  return jnp.mean(jax.nn.logsumexp(logits_te.astype(jnp.float32), axis=-1) ** 2)


def check_router(x_td: jax.Array, router_de: jax.Array) -> int:
  """Validates x [T, D] against router [D, E]; returns E."""
  if x_td.ndim != 2:
    raise ValueError(f"x_td must have shape [T, D], got shape {x_td.shape}")
  if not jnp.issubdtype(x_td.dtype, jnp.floating):
    raise TypeError(f"x_td must be a float array, got {x_td.dtype}")
  if router_de.ndim != 2 or router_de.shape[0] != x_td.shape[1]:
    raise ValueError(f"router must have shape [D={x_td.shape[1]}, E], got shape {router_de.shape}")
  return router_de.shape[1]


def router_logits(x_td: jax.Array, router_de: jax.Array) -> jax.Array:
  """[T, E] float32 logits = x @ router, computed in float32 (small, and routing is sensitive)."""
  check_router(x_td, router_de)
  return jnp.dot(
      x_td.astype(jnp.float32), router_de.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST
  )


def routing_aux(
    logits_te: jax.Array,
    probs_te: jax.Array,
    experts_tk: jax.Array,
    *,
    axis_names: Sequence[str] = (),
) -> MoEAux:
  """`MoEAux` of one routing; inside `shard_map`, totals over the token shards `axis_names`.

  The losses are computed from summed statistics, so a sharded call gives exactly the loss of
  the same tokens routed on one device (not a mean of per-shard losses).
  """
  num_experts = probs_te.shape[1]
  counts_e = jnp.bincount(experts_tk.reshape(-1), length=num_experts).astype(jnp.int32)
  probs_sum_e = jnp.sum(probs_te, axis=0)
  z_sum = jnp.sum(jax.nn.logsumexp(logits_te.astype(jnp.float32), axis=-1) ** 2)
  num_tokens = logits_te.shape[0]
  if axis_names:
    axis_names = tuple(axis_names)
    counts_e, probs_sum_e, z_sum = jax.lax.psum((counts_e, probs_sum_e, z_sum), axis_names)
    num_tokens = num_tokens * jax.lax.psum(1, axis_names)
  probs_mean_e = probs_sum_e / num_tokens
  return MoEAux(
      load_balancing_loss=balance_loss_from_stats(counts_e, probs_mean_e, num_tokens),
      router_z_loss=z_sum / num_tokens,
      tokens_per_expert=counts_e,
      router_probs_mean=probs_mean_e,
  )

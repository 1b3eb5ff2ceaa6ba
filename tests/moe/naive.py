"""Naive MoE references for the tests: a per-token numpy loop and a dense all-experts jnp version.

Neither uses jaxlab.moe: routing is a float64 softmax with a stable argsort, experts run one
token at a time (numpy) or every expert on every token (jnp, differentiable).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def softmax_np(z):
  z = np.asarray(z, np.float64)
  e = np.exp(z - z.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def route_np(logits_te, top_k, renormalize):
  """(weights_tk, experts_tk, probs_te) in float64; ties go to the lower expert id."""
  probs_te = softmax_np(logits_te)
  experts_tk = np.argsort(-probs_te, axis=-1, kind="stable")[:, :top_k]
  weights_tk = np.take_along_axis(probs_te, experts_tk, axis=-1)
  if renormalize:
    weights_tk = weights_tk / weights_tk.sum(axis=-1, keepdims=True)
  return weights_tk, experts_tk, probs_te


def silu_np(z):
  return z / (1.0 + np.exp(-z))


def swiglu_np(x_d, gate_up_df2, down_fd):
  """One expert on one token: down(silu(gate(x)) * up(x)), gate = first half of gate_up's columns."""
  h = x_d @ gate_up_df2
  f = h.shape[-1] // 2
  return (silu_np(h[:f]) * h[f:]) @ down_fd


def moe_loop_np(x_td, router_de, gate_up_edf, down_efd, top_k, renormalize):
  """(y_td, experts_tk, probs_te): for each token, for each of its k experts, weight * expert(x)."""
  x_td, router_de = np.asarray(x_td, np.float64), np.asarray(router_de, np.float64)
  gate_up_edf, down_efd = np.asarray(gate_up_edf, np.float64), np.asarray(down_efd, np.float64)
  weights_tk, experts_tk, probs_te = route_np(x_td @ router_de, top_k, renormalize)
  y_td = np.zeros_like(x_td)
  for t in range(x_td.shape[0]):
    for j in range(top_k):
      e = experts_tk[t, j]
      y_td[t] += weights_tk[t, j] * swiglu_np(x_td[t], gate_up_edf[e], down_efd[e])
  return y_td, experts_tk, probs_te


def shared_np(x_td, w_gate_df, w_up_df, w_down_fd, gate_d1=None):
  """Shared experts as one dense SwiGLU, optionally scaled by sigmoid(x @ gate) (Qwen2-MoE)."""
  x_td = np.asarray(x_td, np.float64)
  out_td = (silu_np(x_td @ np.asarray(w_gate_df, np.float64)) * (x_td @ np.asarray(w_up_df, np.float64))) @ \
      np.asarray(w_down_fd, np.float64)
  if gate_d1 is not None:
    out_td = out_td / (1.0 + np.exp(-(x_td @ np.asarray(gate_d1, np.float64))))
  return out_td


def balance_loss_np(probs_te, experts_tk, num_experts):
  """transformers' load_balancing_loss_func: E * sum over slots and experts of mean(one_hot) * mean(probs)."""
  one_hot_tke = np.eye(num_experts)[experts_tk]
  return num_experts * np.sum(one_hot_tke.mean(axis=0) * np.asarray(probs_te).mean(axis=0)[None, :])


def moe_dense_jnp(x_td, router_de, gate_up_edf, down_efd, top_k, renormalize):
  """(y_td, probs_te, logits_te), differentiable: every expert runs on every token, masked by the gates."""
  hi = jax.lax.Precision.HIGHEST
  logits_te = jnp.dot(x_td, router_de, precision=hi)
  probs_te = jax.nn.softmax(logits_te, axis=-1)
  experts_tk = jnp.argsort(-probs_te, axis=-1, stable=True)[:, :top_k]
  weights_tk = jnp.take_along_axis(probs_te, experts_tk, axis=-1)
  if renormalize:
    weights_tk = weights_tk / jnp.sum(weights_tk, axis=-1, keepdims=True)
  gates_te = jnp.sum(jax.nn.one_hot(experts_tk, probs_te.shape[1]) * weights_tk[..., None], axis=1)
  h_etf = jnp.einsum("td,edf->etf", x_td, gate_up_edf, precision=hi)
  f = h_etf.shape[-1] // 2
  out_etd = jnp.einsum("etf,efd->etd", jax.nn.silu(h_etf[..., :f]) * h_etf[..., f:], down_efd, precision=hi)
  return jnp.einsum("te,etd->td", gates_te, out_etd, precision=hi), probs_te, logits_te

"""HiFlow per-step guidance in plain jnp: the XLA implementation and the ground truth for the kernels."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxlab.ops.flow_guidance_op import spectral

# Keeps 1 / sigma finite at the last step (sigma = 0); the op passes it to the kernels.
SIGMA_EPS = 1e-6


class FlowGuidanceOutput(NamedTuple):
  """One guided step; every field is float32 [B, H, W, C].

  Attributes:
    x_next: latent after the Euler step, x_t + (sigma_next - sigma) * v_guided.
    v_guided: guided (and, with the previous flows given, accelerated) velocity.
    v_ref: velocity that would land on the reference, (x_t - x0_ref) / (sigma + 1e-6);
      pass it as `v_ref_prev` at the next step.
    x0_unguided: the model's clean-latent estimate x_t - sigma * v.
  """

  x_next: jax.Array
  v_guided: jax.Array
  v_ref: jax.Array
  x0_unguided: jax.Array


def flow_guidance_reference(
    x_t: jax.Array,
    v: jax.Array,
    x0_ref: jax.Array,
    v_prev: jax.Array | None = None,
    v_ref_prev: jax.Array | None = None,
    *,
    sigma,
    sigma_next,
    alpha,
    beta,
    lowpass: str = "fft",
    cutoff: float = 0.2,
    order: int = 4,
) -> FlowGuidanceOutput:
  """One HiFlow step, in float32:

    x0_hat = x_t - sigma * v
    x0_g   = x0_hat + alpha * LP(x0_ref - x0_hat)
    v_g    = (x_t - x0_g) / sigma  computed as  v - alpha * LP(.) / (sigma + 1e-6)
    v_ref  = (x_t - x0_ref) / (sigma + 1e-6)
    v_g   += beta * ((v_prev + v_ref - v_ref_prev) - v_g)     only when v_prev, v_ref_prev are given
    x_next = x_t + (sigma_next - sigma) * v_g

  LP is `spectral.lowpass(., lowpass, cutoff=cutoff, order=order)`. Arguments are as for
  `jaxlab.ops.flow_guidance`, which checks them; this function does not.
  """
  lp = lowpass_difference(x_t, v, x0_ref, sigma=sigma, lowpass=lowpass, cutoff=cutoff, order=order)
  return guidance_update(x_t, v, x0_ref, lp, v_prev, v_ref_prev, sigma=sigma, sigma_next=sigma_next, alpha=alpha,
                         beta=beta)


def lowpass_difference(x_t, v, x0_ref, *, sigma, lowpass: str = "fft", cutoff: float = 0.2,
                       order: int = 4) -> jax.Array:
  """lp = LP(x0_ref - x0_hat) with x0_hat = x_t - sigma * v: the step's only non-elementwise part; float32."""
  x_t, v, x0_ref, sigma = _f32(x_t), _f32(v), _f32(x0_ref), _f32(sigma)
  return spectral.lowpass(x0_ref - (x_t - sigma * v), lowpass, cutoff=cutoff, order=order)


def _f32(a) -> jax.Array:
  return jnp.asarray(a, jnp.float32)


def guidance_update(
    x_t: jax.Array,
    v: jax.Array,
    x0_ref: jax.Array,
    lp: jax.Array,
    v_prev: jax.Array | None = None,
    v_ref_prev: jax.Array | None = None,
    *,
    sigma,
    sigma_next,
    alpha,
    beta,
) -> FlowGuidanceOutput:
  """The step after the low-pass, given lp = LP(x0_ref - x0_hat): elementwise, float32."""
  x_t, v, x0_ref, lp = _f32(x_t), _f32(v), _f32(x0_ref), _f32(lp)
  sigma, sigma_next, alpha, beta = _f32(sigma), _f32(sigma_next), _f32(alpha), _f32(beta)
  x0_hat = x_t - sigma * v
  inv_sigma = 1.0 / (sigma + SIGMA_EPS)
  # (x_t - x0_g) / sigma with x0_g = x0_hat + alpha * lp, written so that alpha = 0 returns the
  # model's velocity exactly (the spec's (x_t - x0_g) / (sigma + 1e-6) scales v by sigma / (sigma + 1e-6)).
  v_guided = v - alpha * lp * inv_sigma
  v_ref = (x_t - x0_ref) * inv_sigma
  if v_prev is not None and v_ref_prev is not None:
    v_guided = v_guided + beta * ((_f32(v_prev) + v_ref - _f32(v_ref_prev)) - v_guided)
  x_next = x_t + (sigma_next - sigma) * v_guided
  return FlowGuidanceOutput(x_next=x_next, v_guided=v_guided, v_ref=v_ref, x0_unguided=x0_hat)

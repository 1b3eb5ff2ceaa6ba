"""Rectified-flow training math: noising, velocity targets, sigma sampling, and the loss.

Convention: x_sigma = (1 - sigma) * x0 + sigma * eps with sigma in [0, 1] (1 = pure noise);
the model predicts the velocity v = eps - x0, so x0 = x_sigma - sigma * v and
eps = x_sigma + (1 - sigma) * v. Arrays carry a leading batch axis (images/latents are
`x_bhwc`); sigma is a scalar or one value per batch element (`sigma_b`). Arithmetic runs in
float32 and results take the inputs' dtype.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxlab.flow.schedules import time_shift

SIGMA_KINDS = ("logit_normal", "uniform")

# Sampled sigmas are kept this far inside (0, 1): float32 sigmoid rounds to exactly 0 or 1
# in the tails, where x0 or eps would drop out of x_sigma entirely.
_SIGMA_MARGIN = 1e-6


def _check_same_shape(fn: str, names: tuple[str, str], a: jax.Array, b: jax.Array) -> None:
  if a.shape != b.shape:
    raise ValueError(f"{fn} needs {names[0]} and {names[1]} of one shape, got {a.shape} and {b.shape}")
  if a.ndim < 1:
    raise ValueError(f"{fn} needs arrays with a leading batch axis, got shape {a.shape}")


def _sigma_column(fn: str, sigma_b: Any, x: jax.Array) -> jax.Array:
  """sigma as float32, shaped to broadcast against x: [] stays [], [B] becomes [B, 1, ..., 1]."""
  sigma = jnp.asarray(sigma_b, jnp.float32)
  if sigma.ndim == 0:
    return sigma
  if sigma.shape != (x.shape[0],):
    raise ValueError(f"{fn} needs sigma as a scalar or of shape [B] = ({x.shape[0]},), got {sigma.shape}")
  return sigma.reshape((-1,) + (1,) * (x.ndim - 1))


def noisy_sample(x0: jax.Array, noise: jax.Array, sigma_b: Any) -> jax.Array:
  """x_sigma = (1 - sigma) * x0 + sigma * noise.

  Args:
    x0: [B, ...] clean data (e.g. x0_bhwc).
    noise: [B, ...] standard normal noise, same shape.
    sigma_b: scalar or [B] noise levels in [0, 1].

  Returns:
    [B, ...] noisy sample in the promoted dtype of x0 and noise.
  """
  _check_same_shape("noisy_sample", ("x0", "noise"), x0, noise)
  sigma = _sigma_column("noisy_sample", sigma_b, x0)
  x_sigma = (1.0 - sigma) * x0.astype(jnp.float32) + sigma * noise.astype(jnp.float32)
  return x_sigma.astype(jnp.result_type(x0, noise))


def velocity_target(x0: jax.Array, noise: jax.Array) -> jax.Array:
  """Regression target v = noise - x0 (d x_sigma / d sigma along the straight path)."""
  _check_same_shape("velocity_target", ("x0", "noise"), x0, noise)
  return noise - x0


def x0_from_velocity(x_t: jax.Array, v: jax.Array, sigma_b: Any) -> jax.Array:
  """Clean-data estimate x0 = x_t - sigma * v from a velocity prediction.

  Args:
    x_t: [B, ...] sample at noise level sigma.
    v: [B, ...] velocity, same shape.
    sigma_b: scalar or [B] noise levels.
  """
  _check_same_shape("x0_from_velocity", ("x_t", "v"), x_t, v)
  sigma = _sigma_column("x0_from_velocity", sigma_b, x_t)
  x0 = x_t.astype(jnp.float32) - sigma * v.astype(jnp.float32)
  return x0.astype(jnp.result_type(x_t, v))


def noise_from_velocity(x_t: jax.Array, v: jax.Array, sigma_b: Any) -> jax.Array:
  """Noise estimate eps = x_t + (1 - sigma) * v from a velocity prediction (shapes as `x0_from_velocity`)."""
  _check_same_shape("noise_from_velocity", ("x_t", "v"), x_t, v)
  sigma = _sigma_column("noise_from_velocity", sigma_b, x_t)
  eps = x_t.astype(jnp.float32) + (1.0 - sigma) * v.astype(jnp.float32)
  return eps.astype(jnp.result_type(x_t, v))


def sample_sigmas(
    key: jax.Array,
    batch: int,
    *,
    kind: str = "logit_normal",
    mean: float = 0.0,
    std: float = 1.0,
    shift: float | None = None,
) -> jax.Array:
  """Training noise levels, one per batch element.

  Args:
    key: PRNG key.
    batch: B, >= 1.
    kind: "logit_normal" (sigmoid of N(mean, std^2), which favours mid-range sigmas) or
      "uniform" (U(0, 1); mean and std are ignored).
    mean, std: logit-normal location and scale (std > 0).
    shift: optional static `time_shift` applied after sampling.

  Returns:
    [B] float32 sigmas strictly inside (0, 1).
  """
  if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1:
    raise ValueError(f"sample_sigmas needs an integer batch >= 1, got {batch!r}")
  if kind not in SIGMA_KINDS:
    raise ValueError(f"sample_sigmas kind must be one of {SIGMA_KINDS}, got {kind!r}")
  for name, value in (("mean", mean), ("std", std)):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
      raise ValueError(f"sample_sigmas {name} must be a finite real number, got {value!r}")
  if std <= 0:
    raise ValueError(f"sample_sigmas needs std > 0, got {std}")
  if kind == "logit_normal":
    logits_b = mean + std * jax.random.normal(key, (int(batch),), jnp.float32)
    sigma_b = jax.nn.sigmoid(logits_b)
  else:
    sigma_b = jax.random.uniform(key, (int(batch),), jnp.float32)
  sigma_b = jnp.clip(sigma_b, _SIGMA_MARGIN, 1.0 - _SIGMA_MARGIN)
  if shift is not None:
    sigma_b = jnp.clip(time_shift(sigma_b, shift), _SIGMA_MARGIN, 1.0 - _SIGMA_MARGIN)
  return sigma_b


def flow_matching_loss(
    velocity_fn: Callable[[jax.Array, jax.Array, Any], jax.Array],
    x0_bhwc: jax.Array,
    cond: Any,
    key: jax.Array,
    *,
    sigma_kind: str = "logit_normal",
    shift: float | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Rectified-flow loss: mean squared error between predicted and target velocity.

  Draws eps ~ N(0, 1) with x0's shape and one sigma per example (`sample_sigmas` with
  `sigma_kind` and `shift`) from `key`, forms x_sigma, and regresses
  velocity_fn(x_sigma, sigma_b, cond) onto eps - x0. Error math runs in float32.

  Args:
    velocity_fn: (x_bhwc, sigma_b [B] float32, cond) -> v_bhwc of x's shape.
    x0_bhwc: [B, H, W, C] clean images or latents (any shape with a leading batch axis works).
    cond: conditioning passed through to velocity_fn unchanged (may be None).
    key: PRNG key.
    sigma_kind: "logit_normal" or "uniform".
    shift: optional static time shift of the sampled sigmas.

  Returns:
    (loss, aux): loss is the float32 scalar mean over all elements; aux holds 'sigma' [B]
    and 'mse' [B], the per-example mean squared error (their mean is the loss).
  """
  if x0_bhwc.ndim < 1:
    raise ValueError(f"flow_matching_loss needs x0 with a leading batch axis, got shape {x0_bhwc.shape}")
  batch = x0_bhwc.shape[0]
  noise_key, sigma_key = jax.random.split(key)
  sigma_b = sample_sigmas(sigma_key, batch, kind=sigma_kind, shift=shift)
  # Noise is rounded to x0's dtype once, so the input and the target see the same values.
  noise_bhwc = jax.random.normal(noise_key, x0_bhwc.shape, jnp.float32).astype(x0_bhwc.dtype)
  x_sigma_bhwc = noisy_sample(x0_bhwc, noise_bhwc, sigma_b)
  v_bhwc = velocity_fn(x_sigma_bhwc, sigma_b, cond)
  if v_bhwc.shape != x0_bhwc.shape:
    raise ValueError(f"velocity_fn must return x's shape {x0_bhwc.shape}, got {v_bhwc.shape}")
  target_bhwc = noise_bhwc.astype(jnp.float32) - x0_bhwc.astype(jnp.float32)
  sq_err = jnp.square(v_bhwc.astype(jnp.float32) - target_bhwc)
  mse_b = jnp.mean(sq_err.reshape(batch, -1), axis=1)
  return jnp.mean(mse_b), {"sigma": sigma_b, "mse": mse_b}

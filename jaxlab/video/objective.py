"""Structural flow-matching loss: one noise level per clip shared by every modality, one MSE per modality.

With x_sigma = (1 - sigma) * x0 + sigma * eps and the velocity target v = eps - x0 (the
`jaxlab.flow.matching` convention), the loss is L = sum_m mean((v^_m - v_m)^2): each modality's
squared error is averaged over its own elements, so rgb's 3 channels do not outweigh depth's 1.

Randomness follows `jaxlab.flow.flow_matching_loss` exactly: `key` splits into (noise_key,
sigma_key); sigma_b comes from `sample_sigmas(sigma_key, B)` and eps is one standard normal draw of
x0's full shape from noise_key, so each modality (a channel slice) gets its own independent noise.
With the single modality ("rgb",) the loss, sigma and noise equal `flow_matching_loss`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import _compat
from jaxlab.flow.matching import noisy_sample, sample_sigmas
from jaxlab.video.modalities import channels_of, check_modalities, split_modalities


def structural_flow_loss(
    velocity_fn: Callable[[jax.Array, jax.Array, Any], jax.Array],
    x0_bfhwc: jax.Array,
    cond: Any,
    key: jax.Array,
    *,
    modalities: Any,
    sigma_kind: str = "logit_normal",
    shift: float | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Rectified-flow loss over the modalities of a video, as described in the module docstring.

  Args:
    velocity_fn: (x_bfhwc, sigma_b [B] float32, cond) -> v_bfhwc of x's shape.
    x0_bfhwc: [B, F, H, W, C] clean video, C = channels_of(modalities) (see `encode_modalities`).
    cond: passed to velocity_fn unchanged (may be None).
    key: PRNG key.
    modalities: the channel layout of x0, e.g. ("rgb", "depth", "normal").
    sigma_kind: "logit_normal" or "uniform" (`sample_sigmas`).
    shift: optional static time shift of the sampled sigmas.

  Returns:
    (loss, aux): loss the float32 scalar sum over modalities of their mean squared errors; aux
    holds "sigma" [B], and per modality m "mse_<m>" (scalar, the mean of "mse_<m>_b") and
    "mse_<m>_b" [B] (per-example mean over that modality's elements).
  """
  names = check_modalities(modalities)
  channels = channels_of(names)
  if x0_bfhwc.ndim != 5 or x0_bfhwc.shape[-1] != channels:
    raise ValueError(f"structural_flow_loss needs x0 as [B, F, H, W, C] with C = {channels} for modalities "
                     f"{names}, got shape {x0_bfhwc.shape}")
  if not isinstance(x0_bfhwc, _compat.Tracer) and not np.isfinite(np.asarray(x0_bfhwc, np.float32)).all():
    raise ValueError("structural_flow_loss: x0 holds NaN or inf")
  batch = x0_bfhwc.shape[0]
  noise_key, sigma_key = jax.random.split(key)
  sigma_b = sample_sigmas(sigma_key, batch, kind=sigma_kind, shift=shift)
  # Noise is rounded to x0's dtype once, so the input and the target see the same values.
  noise_bfhwc = jax.random.normal(noise_key, x0_bfhwc.shape, jnp.float32).astype(x0_bfhwc.dtype)
  x_sigma = noisy_sample(x0_bfhwc, noise_bfhwc, sigma_b)
  v_bfhwc = velocity_fn(x_sigma, sigma_b, cond)
  if v_bfhwc.shape != x0_bfhwc.shape:
    raise ValueError(f"velocity_fn must return x's shape {x0_bfhwc.shape}, got {v_bfhwc.shape}")
  target_bfhwc = noise_bfhwc.astype(jnp.float32) - x0_bfhwc.astype(jnp.float32)
  sq_err = split_modalities(jnp.square(v_bfhwc.astype(jnp.float32) - target_bfhwc), names)
  aux = {"sigma": sigma_b}
  loss = jnp.zeros((), jnp.float32)
  for name in names:
    mse_b = jnp.mean(sq_err[name].reshape(batch, -1), axis=1)
    aux[f"mse_{name}_b"] = mse_b
    aux[f"mse_{name}"] = jnp.mean(mse_b)
    loss = loss + aux[f"mse_{name}"]
  return loss, aux

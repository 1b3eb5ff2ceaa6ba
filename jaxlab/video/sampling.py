"""Sampling a video from a velocity field: integrate the rectified-flow ODE from noise (sigma = 1) to data (0).

All modalities are denoised together on one sigma grid (`jaxlab.flow.schedules.sigma_schedule`),
as they were trained with one shared sigma per clip. Works under `jax.jit` with num_steps, shift
and method static (the grid is built on the host).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import _compat
from jaxlab.flow.samplers import VelocityFn, euler_sample, heun_sample
from jaxlab.flow.schedules import sigma_schedule

SAMPLE_METHODS = ("euler", "heun")


def sample_video(
    velocity_fn: VelocityFn,
    noise_bfhwc: jax.Array,
    cond: Any,
    *,
    num_steps: int,
    shift: float | None = None,
    method: str = "euler",
) -> jax.Array:
  """Integrates dx/dsigma = velocity_fn(x, sigma, cond) from noise at sigma = 1 down to sigma = 0.

  Args:
    velocity_fn: (x_bfhwc, sigma_b [B] float32, cond) -> v_bfhwc of x's shape.
    noise_bfhwc: [B, F, H, W, C] standard normal noise (the state at sigma = 1).
    cond: passed to velocity_fn unchanged (may be None).
    num_steps: integration steps (Euler: num_steps field evaluations, Heun: 2 num_steps - 1).
    shift: optional static time shift of the grid (> 1 spends more steps at high noise).
    method: "euler" or "heun".

  Returns:
    [B, F, H, W, C] the clean-video estimate at sigma = 0, in noise_bfhwc's dtype.
  """
  if method not in SAMPLE_METHODS:
    raise ValueError(f"sample_video method must be one of {SAMPLE_METHODS}, got {method!r}")
  if isinstance(num_steps, bool) or not isinstance(num_steps, numbers.Integral) or num_steps < 1:
    raise ValueError(f"sample_video needs an integer num_steps >= 1, got {num_steps!r}")
  if shift is not None and (isinstance(shift, bool) or not isinstance(shift, numbers.Real)
                            or not math.isfinite(shift) or shift <= 0):
    raise ValueError(f"sample_video shift must be None or a finite real number > 0, got {shift!r}")
  if np.ndim(noise_bfhwc) != 5:
    raise ValueError(f"sample_video needs noise as [B, F, H, W, C], got shape {np.shape(noise_bfhwc)}")
  if not isinstance(noise_bfhwc, _compat.Tracer) and not np.isfinite(np.asarray(noise_bfhwc, np.float32)).all():
    raise ValueError("sample_video: the noise holds NaN or inf")
  sigmas = jnp.asarray(sigma_schedule(int(num_steps), shift=shift))
  sampler = euler_sample if method == "euler" else heun_sample
  return sampler(velocity_fn, jnp.asarray(noise_bfhwc), sigmas, cond)

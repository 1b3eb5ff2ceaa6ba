"""Noise-level (sigma) schedules for rectified flow: time shifts and sampler step grids.

Convention: sigma in [0, 1], sigma = 1 is pure noise, sigma = 0 is data. Both shifts are
strictly increasing maps of [0, 1] onto itself that fix the endpoints and, for shift > 1
(mu > 0), move the grid towards the noisy end, where large images need more steps.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from jaxlab import _compat


def _check_real(name: str, value: Any) -> float:
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
    raise ValueError(f"{name} must be a finite real number, got {value!r}")
  return float(value)


def _check_unit_interval(fn: str, sigmas: Any) -> None:
  """Raises ValueError for concrete sigmas outside [0, 1]; traced values pass unchecked."""
  if isinstance(sigmas, _compat.Tracer):
    return
  s = np.asarray(sigmas, np.float64)
  if not np.all((s >= 0.0) & (s <= 1.0)):  # also catches NaN
    bad = s[~((s >= 0.0) & (s <= 1.0))].ravel()[0]
    raise ValueError(f"{fn} needs sigmas in [0, 1], got a value {bad}")


def time_shift(sigmas: Any, shift: float) -> Any:
  """Static time shift: shift * s / (1 + (shift - 1) * s).

  shift = 1 is the identity; shifting by a then b equals shifting by a * b.

  Args:
    sigmas: float or array of sigmas in [0, 1] (NumPy or jax; checked only when concrete).
    shift: a Python float > 0.

  Returns:
    Shifted sigmas, same shape and array type as `sigmas`.
  """
  shift = _check_real("time_shift shift", shift)
  if shift <= 0.0:
    raise ValueError(f"time_shift needs shift > 0, got {shift}")
  _check_unit_interval("time_shift", sigmas)
  # Same value, written so that s = 1 gives x / x = 1 exactly.
  return shift * sigmas / (shift * sigmas + (1.0 - sigmas))


def resolution_shift_mu(
    num_tokens: int,
    *,
    base_tokens: int = 256,
    max_tokens: int = 4096,
    base_shift: float = 0.5,
    max_shift: float = 1.15,
) -> float:
  """Resolution-dependent mu for `exponential_time_shift`: linear in the token count.

  The line passes through (base_tokens, base_shift) and (max_tokens, max_shift) and is
  extended linearly beyond both ends.

  Args:
    num_tokens: image tokens (latent patches) per sample, >= 1.
    base_tokens, max_tokens: the two anchor token counts; must differ.
    base_shift, max_shift: mu at those anchors.

  Returns:
    mu as a Python float.
  """
  if isinstance(num_tokens, bool) or not isinstance(num_tokens, numbers.Integral) or num_tokens < 1:
    raise ValueError(f"resolution_shift_mu needs an integer num_tokens >= 1, got {num_tokens!r}")
  base_tokens = _check_real("resolution_shift_mu base_tokens", base_tokens)
  max_tokens = _check_real("resolution_shift_mu max_tokens", max_tokens)
  base_shift = _check_real("resolution_shift_mu base_shift", base_shift)
  max_shift = _check_real("resolution_shift_mu max_shift", max_shift)
  if base_tokens == max_tokens:
    raise ValueError(f"resolution_shift_mu needs base_tokens != max_tokens, both are {base_tokens}")
  slope = (max_shift - base_shift) / (max_tokens - base_tokens)
  return base_shift + slope * (int(num_tokens) - base_tokens)


def exponential_time_shift(sigmas: Any, mu: float) -> Any:
  """Exponential time shift: exp(mu) / (exp(mu) + (1 / s - 1)).

  Evaluated as exp(mu) * s / (exp(mu) * s + 1 - s), which is the same for s in (0, 1] and
  maps s = 0 to 0 exactly without dividing by zero. Equals `time_shift(s, exp(mu))`;
  mu = 0 is the identity.

  Args:
    sigmas: float or array of sigmas in [0, 1] (NumPy or jax; checked only when concrete).
    mu: a Python float.

  Returns:
    Shifted sigmas, same shape and array type as `sigmas`.
  """
  mu = _check_real("exponential_time_shift mu", mu)
  if abs(mu) > 700.0:  # exp(mu) leaves float64 range
    raise ValueError(f"exponential_time_shift needs |mu| <= 700, got {mu}")
  _check_unit_interval("exponential_time_shift", sigmas)
  scale = math.exp(mu)
  return scale * sigmas / (scale * sigmas + (1.0 - sigmas))


def sigma_schedule(num_steps: int, *, shift: float | None = None, mu: float | None = None) -> np.ndarray:
  """Sampler grid of num_steps + 1 strictly decreasing sigmas from 1 down to 0.

  The base grid is linspace(1, 1 / num_steps, num_steps); it is then shifted by `time_shift`
  (if `shift` is given) or `exponential_time_shift` (if `mu` is given), and a final 0 is
  appended. Computed in float64 on the host.

  Args:
    num_steps: number of integration steps, >= 1.
    shift: static shift (> 0), or None.
    mu: exponential shift, e.g. from `resolution_shift_mu`, or None. Not both.

  Returns:
    [num_steps + 1] float32 NumPy array; first entry 1, last entry 0.
  """
  if isinstance(num_steps, bool) or not isinstance(num_steps, numbers.Integral) or num_steps < 1:
    raise ValueError(f"sigma_schedule needs an integer num_steps >= 1, got {num_steps!r}")
  if shift is not None and mu is not None:
    raise ValueError(f"sigma_schedule takes shift or mu, not both (got shift={shift}, mu={mu})")
  num_steps = int(num_steps)
  sigmas_n = np.linspace(1.0, 1.0 / num_steps, num_steps, dtype=np.float64)
  if shift is not None:
    sigmas_n = time_shift(sigmas_n, shift)
  elif mu is not None:
    sigmas_n = exponential_time_shift(sigmas_n, mu)
  sigmas = np.append(sigmas_n, 0.0).astype(np.float32)
  # Extreme shifts with many steps can round neighbours to the same float32 value.
  if not np.all(np.diff(sigmas) < 0):
    raise ValueError(
        f"sigma_schedule: {num_steps} steps with shift={shift}, mu={mu} give repeated float32 sigmas; "
        "use fewer steps or a milder shift"
    )
  return sigmas

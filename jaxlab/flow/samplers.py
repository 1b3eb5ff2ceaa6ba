"""ODE samplers for rectified flow (Euler, Heun) and classifier-free guidance of a velocity field.

A velocity field is `VelocityFn`: (x_bhwc, sigma_b [B] float32, cond) -> v_bhwc, where v
approximates eps - x0 and cond may be None. Samplers integrate dx/dsigma = v over the
consecutive pairs of a 1-D sigma grid (e.g. `sigma_schedule(n)` or a tail slice of one)
with `jax.lax.scan`, so they trace once whatever the step count and work under `jax.jit`
with the grid as a traced array. The state is integrated in float32; the velocity field
sees x in x_init's dtype.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import _compat

VelocityFn = Callable[[jax.Array, jax.Array, Any], jax.Array]


def _check_sigmas(fn: str, sigmas: Any) -> jax.Array:
  """sigmas as a float32 [N + 1] jax array; shape always checked, values when concrete."""
  shape = tuple(np.shape(sigmas))
  if len(shape) != 1 or shape[0] < 2:
    raise ValueError(f"{fn} needs sigmas as a 1-D array with at least 2 entries, got shape {shape}")
  if not isinstance(sigmas, _compat.Tracer):
    s = np.asarray(sigmas, np.float64)
    if not np.all((s >= 0.0) & (s <= 1.0)):  # also catches NaN
      raise ValueError(f"{fn} needs sigmas in [0, 1], got {s.tolist()}")
    rises = np.nonzero(np.diff(s) > 0)[0]
    if rises.size:
      i = int(rises[0])
      raise ValueError(f"{fn} needs non-increasing sigmas, got sigmas[{i}]={s[i]} < sigmas[{i + 1}]={s[i + 1]}")
  return jnp.asarray(sigmas, jnp.float32)


def _check_x_init(fn: str, x_init: Any) -> None:
  if np.ndim(x_init) < 1:
    raise ValueError(f"{fn} needs x_init with a leading batch axis, got shape {np.shape(x_init)}")
  if not jnp.issubdtype(x_init.dtype, jnp.floating):
    raise TypeError(f"{fn} needs floating-point x_init, got {x_init.dtype}")


def _field(velocity_fn: VelocityFn, cond: Any, x_init: jax.Array) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """(x float32, sigma scalar) -> v float32, calling velocity_fn with x in x_init's dtype and sigma as [B]."""
  batch, dtype = x_init.shape[0], x_init.dtype

  def evaluate(x: jax.Array, sigma: jax.Array) -> jax.Array:
    sigma_b = jnp.full((batch,), sigma, jnp.float32)
    v = velocity_fn(x.astype(dtype), sigma_b, cond)
    if v.shape != x.shape:
      raise ValueError(f"velocity_fn must return x's shape {x.shape}, got {v.shape}")
    return v.astype(jnp.float32)

  return evaluate


def _integrate(step: Callable, x_init: jax.Array, sigmas_n1: jax.Array, return_x0: bool):
  x_final, x0_nbhwc = jax.lax.scan(step, x_init.astype(jnp.float32), (sigmas_n1[:-1], sigmas_n1[1:]))
  x_final = x_final.astype(x_init.dtype)
  return (x_final, x0_nbhwc) if return_x0 else x_final


def euler_sample(
    velocity_fn: VelocityFn,
    x_init: jax.Array,
    sigmas: Any,
    cond: Any = None,
    *,
    return_x0: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
  """First-order Euler integration: x <- x + (sigma_next - sigma) * v(x, sigma), once per step.

  Args:
    velocity_fn: the velocity field (see `VelocityFn`).
    x_init: [B, H, W, C] state at sigmas[0] (pure noise when sigmas[0] = 1).
    sigmas: [N + 1] non-increasing sigmas in [0, 1]; N steps, N velocity evaluations.
    cond: passed to velocity_fn unchanged.
    return_x0: also return the clean-data estimate x - sigma * v taken before each update.

  Returns:
    x_final [B, H, W, C] in x_init's dtype, and with return_x0 the [N, B, H, W, C] stack of
    per-step x0 estimates.
  """
  sigmas_n1 = _check_sigmas("euler_sample", sigmas)
  _check_x_init("euler_sample", x_init)
  field = _field(velocity_fn, cond, x_init)

  def step(x, sigma_pair):
    sigma, sigma_next = sigma_pair
    v = field(x, sigma)
    x0_hat = (x - sigma * v).astype(x_init.dtype) if return_x0 else None
    return x + (sigma_next - sigma) * v, x0_hat

  return _integrate(step, x_init, sigmas_n1, return_x0)


def heun_sample(
    velocity_fn: VelocityFn,
    x_init: jax.Array,
    sigmas: Any,
    cond: Any = None,
    *,
    return_x0: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
  """Second-order Heun integration (Euler predictor, trapezoidal corrector).

  Each step predicts x' = x + dt * v(x, sigma) and corrects with the mean of v(x, sigma) and
  v(x', sigma_next). A step that ends at sigma_next = 0 keeps the plain Euler prediction,
  so the field is never evaluated at clean data; a full grid ending in 0 costs 2N - 1
  evaluations. Arguments and returns as `euler_sample`.
  """
  sigmas_n1 = _check_sigmas("heun_sample", sigmas)
  _check_x_init("heun_sample", x_init)
  field = _field(velocity_fn, cond, x_init)

  def step(x, sigma_pair):
    sigma, sigma_next = sigma_pair
    dt = sigma_next - sigma
    v = field(x, sigma)
    x_euler = x + dt * v

    def corrected():
      return x + dt * 0.5 * (v + field(x_euler, sigma_next))

    x_next = jax.lax.cond(sigma_next == 0.0, lambda: x_euler, corrected)
    x0_hat = (x - sigma * v).astype(x_init.dtype) if return_x0 else None
    return x_next, x0_hat

  return _integrate(step, x_init, sigmas_n1, return_x0)


def _null_like(null_cond: Any, cond: Any, batch: int) -> Any:
  """null_cond broadcast leaf by leaf to cond's structure, shapes and dtypes.

  null_cond may be one array for every leaf of cond or a tree that is a prefix of cond's;
  each null leaf must broadcast to the matching cond leaf's [B, ...] shape.
  """

  def check_leaf(c):
    if np.ndim(c) < 1 or np.shape(c)[0] != batch:
      raise ValueError(
          f"classifier_free_guidance needs every cond leaf to lead with B={batch}, got shape {np.shape(c)}"
      )

  def broadcast_leaf(n, c):
    try:
      return jnp.broadcast_to(jnp.asarray(n), np.shape(c)).astype(jnp.result_type(c))
    except ValueError as e:
      raise ValueError(
          f"classifier_free_guidance: null_cond leaf of shape {np.shape(n)} does not broadcast to cond leaf "
          f"of shape {np.shape(c)}"
      ) from e

  jax.tree.map(check_leaf, cond)
  try:
    return jax.tree.map(lambda n, c_tree: jax.tree.map(lambda c: broadcast_leaf(n, c), c_tree), null_cond, cond)
  except ValueError as e:
    if "does not broadcast" in str(e):
      raise
    raise ValueError(
        f"classifier_free_guidance: null_cond structure {jax.tree.structure(null_cond)} is not a prefix of "
        f"cond structure {jax.tree.structure(cond)}"
    ) from e


def classifier_free_guidance(velocity_fn: VelocityFn, scale: float, null_cond: Any) -> VelocityFn:
  """Guided field v_u + scale * (v_c - v_u) from conditional (cond) and unconditional (null_cond) velocities.

  Both velocities come from ONE velocity_fn call on a 2B batch: x and sigma repeated, cond
  followed by null_cond. scale = 1 returns the conditional velocity and scale = 0 the
  unconditional one, each from a single B-sized call.

  Args:
    velocity_fn: the conditional velocity field.
    scale: guidance scale, a finite Python float (1 = no guidance).
    null_cond: the "no condition" value: an int label (or array) for a [B] label cond, or a
      tree of arrays matching cond (or any prefix of it); leaves broadcast to cond's leaves,
      so a single example without the batch axis is enough.

  Returns:
    A `VelocityFn` whose cond must not be None.
  """
  if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale):
    raise ValueError(f"classifier_free_guidance scale must be a finite real number, got {scale!r}")
  if null_cond is None:
    raise ValueError("classifier_free_guidance needs a null_cond (the unconditional input), got None")
  scale = float(scale)

  def guided(x_bhwc: jax.Array, sigma_b: jax.Array, cond: Any) -> jax.Array:
    if cond is None:
      raise ValueError("a classifier-free-guided velocity field needs a cond, got None")
    batch = x_bhwc.shape[0]
    null = _null_like(null_cond, cond, batch)
    if scale == 1.0:
      return velocity_fn(x_bhwc, sigma_b, cond)
    if scale == 0.0:
      return velocity_fn(x_bhwc, sigma_b, null)
    sigma_b = jnp.broadcast_to(jnp.asarray(sigma_b, jnp.float32), (batch,))
    both_cond = jax.tree.map(lambda c, n: jnp.concatenate([c, n], axis=0), cond, null)
    v_2bhwc = velocity_fn(
        jnp.concatenate([x_bhwc, x_bhwc], axis=0), jnp.concatenate([sigma_b, sigma_b], axis=0), both_cond
    )
    v_c = v_2bhwc[:batch].astype(jnp.float32)
    v_u = v_2bhwc[batch:].astype(jnp.float32)
    return (v_u + scale * (v_c - v_u)).astype(v_2bhwc.dtype)

  return guided

"""Adam with the per-parameter learning rates of 3DGS, built with optax.

The optimizer works on a dict of trainable leaves (`trainable_params`), not on `Gaussians`
itself: the SH coefficients are split into `sh_dc` ([N, 1, 3]) and `sh_rest` ([N, K-1, 3])
because 3DGS gives them different learning rates (2.5e-3 and 2.5e-3 / 20), and `active` is
not trainable. `optax.multi_transform` then runs one Adam per leaf, each with its own rate:

  means           1.6e-4 * extent -> 1.6e-6 * extent, log-linear over 30000 iterations
  log_scales      5e-3
  quats           1e-3
  opacity_logits  0.025
  sh_dc           2.5e-3
  sh_rest         1.25e-4

Every Adam has betas (0.9, 0.999) and eps 1e-15, as the 3DGS code. Every moment array has
the buffer's N as its leading dimension, so densification edits moments row by row with
`zero_moment_rows`.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxlab.splat.fit.state import FitSettings
from jaxlab.splat.gaussians import Gaussians

TRAINABLE_FIELDS = ("means", "log_scales", "quats", "opacity_logits", "sh_dc", "sh_rest")


def trainable_params(gaussians: Gaussians) -> dict[str, jax.Array]:
  """The optimizer's view of the scene: its float fields, SH split into DC and the rest."""
  return {
      "means": gaussians.means,
      "log_scales": gaussians.log_scales,
      "quats": gaussians.quats,
      "opacity_logits": gaussians.opacity_logits,
      "sh_dc": gaussians.sh[:, :1],
      "sh_rest": gaussians.sh[:, 1:],
  }


def with_trainable(gaussians: Gaussians, params: dict[str, jax.Array]) -> Gaussians:
  """`gaussians` with its float fields taken from `params` (the inverse of `trainable_params`)."""
  return gaussians.replace(
      means=params["means"],
      log_scales=params["log_scales"],
      quats=params["quats"],
      opacity_logits=params["opacity_logits"],
      sh=jnp.concatenate([params["sh_dc"], params["sh_rest"]], axis=1),
  )


def position_lr_at_iteration(iteration: jax.Array, settings: FitSettings, scene_extent: float) -> jax.Array:
  """3DGS's `get_expon_lr_func` (no delay): log-linear from init to final, times the extent."""
  t = jnp.clip(jnp.asarray(iteration, jnp.float32) / settings.position_lr_max_steps, 0.0, 1.0)
  log_lr = (1.0 - t) * math.log(settings.position_lr_init) + t * math.log(settings.position_lr_final)
  return scene_extent * jnp.exp(log_lr)


def learning_rates(settings: FitSettings, scene_extent: float) -> dict[str, Any]:
  """Per-leaf learning rate: a float, or for `means` an optax schedule of the update count.

  The schedule maps optax's count c (updates applied so far) to the rate of 3DGS iteration
  c + 1; skipped non-finite steps apply no update, so they do not advance the decay.
  """
  if not (isinstance(scene_extent, (int, float)) and math.isfinite(scene_extent) and scene_extent > 0):
    raise ValueError(f"scene_extent must be a finite float > 0; got {scene_extent!r}")
  return {
      "means": lambda count: position_lr_at_iteration(count + 1, settings, scene_extent),
      "log_scales": settings.scaling_lr,
      "quats": settings.rotation_lr,
      "opacity_logits": settings.opacity_lr,
      "sh_dc": settings.sh_dc_lr,
      "sh_rest": settings.sh_rest_lr,
  }


def make_optimizer(settings: FitSettings, scene_extent: float) -> optax.GradientTransformation:
  """One Adam per trainable leaf (`trainable_params`), each with its 3DGS learning rate.

  The state `init` builds does not depend on the rates or the extent (only the update
  does), so a state made with any extent serves the optimizer of the real one.
  """
  adam = lambda lr: optax.adam(lr, b1=0.9, b2=0.999, eps=settings.adam_eps)
  transforms = {name: adam(lr) for name, lr in learning_rates(settings, scene_extent).items()}
  return optax.multi_transform(transforms, lambda params: {name: name for name in params})


def _path_names(path) -> set[str]:
  return {entry.key for entry in path if isinstance(entry, jax.tree_util.DictKey)}


def zero_moment_rows(opt_state: Any, rows_n: jax.Array, *, fields: tuple[str, ...] | None = None) -> Any:
  """`opt_state` with the Adam moments of the rows where `rows_n` ([N] bool) is True set to 0.

  Acts on every leaf whose leading dimension is N (the moments; step counts are scalars),
  or only on those of the given trainable `fields` (e.g. ("opacity_logits",)).
  """
  num = rows_n.shape[0]
  wanted = None if fields is None else set(fields)

  def edit(path, leaf):
    if jnp.ndim(leaf) == 0 or leaf.shape[0] != num:
      return leaf
    if wanted is not None and not (_path_names(path) & wanted):
      return leaf
    return jnp.where(rows_n.reshape(-1, *([1] * (leaf.ndim - 1))), jnp.zeros_like(leaf), leaf)

  return jax.tree_util.tree_map_with_path(edit, opt_state)

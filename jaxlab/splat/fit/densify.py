"""Adaptive density control of 3DGS inside a fixed-capacity buffer, as pure functions.

The scene lives in a `Gaussians` buffer of N slots with an `active` mask, so cloning,
splitting and pruning change which slots are active, never a shape: every function here
has static shapes and runs inside one jitted step.

- `accumulate_stats`: per step, the norm of d loss / d means2d of each visible Gaussian (in
  NDC units: pixels x (W/2, H/2), and per view, as 3DGS and gsplat), its view count and its
  largest screen radius.
- `densify_and_prune`: Gaussians whose mean gradient is >= the threshold are cloned (max
  scale <= percent_dense * extent: an exact copy) or split (larger: two samples drawn from
  the Gaussian, scales / 1.6; the original slot becomes the first sample). New Gaussians go
  into inactive slots, matched by rank (the k-th request, in slot order, takes the k-th free
  slot); requests beyond the free slots are dropped whole (a split that cannot place its
  second child leaves the original as it was) and counted. Then Gaussians with opacity <
  min_opacity are pruned, and, after the first opacity reset, those larger than
  `prune_screen_size` pixels (largest radius since the last densification) or
  `prune_world_scale` * extent. Slots freed by pruning are reused from the next
  densification on. Adam moments of new, split and pruned slots are zeroed; statistics of
  every slot restart from zero.
- `reset_opacity`: opacities capped at 0.01, and the opacity moments zeroed.
- `sh_degree_for_iteration` / `sh_band_mask`: the SH degree schedule as a mask over the
  coefficients (higher bands are multiplied by 0 when rendering and get no update).

One departure from the INRIA code: there the stats are zeroed before the oversize prune
reads `max_radii2D`, which makes that screen-size test a no-op; here it uses the radii
gathered since the previous densification, as intended (and as gsplat does).
"""

import math
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from jaxlab.splat.fit.optim import zero_moment_rows
from jaxlab.splat.fit.state import FitSettings
from jaxlab.splat.gaussians import Gaussians, rotation_matrices


@flax.struct.dataclass
class DensifyStats:
  """Per-slot statistics since the last densification.

  Attributes:
    grad_accum: [N] float32 sum of view-space gradient norms (NDC units).
    grad_count: [N] int32 number of views in which the Gaussian was visible.
    max_radii: [N] float32 largest screen radius in pixels.
  """

  grad_accum: jax.Array
  grad_count: jax.Array
  max_radii: jax.Array

  @classmethod
  def zeros(cls, num: int) -> "DensifyStats":
    return cls(
        grad_accum=jnp.zeros((num,), jnp.float32),
        grad_count=jnp.zeros((num,), jnp.int32),
        max_radii=jnp.zeros((num,), jnp.float32))

  def mean_grad(self) -> jax.Array:
    """[N] mean gradient norm per view (0 for Gaussians never seen)."""
    return jnp.where(self.grad_count > 0, self.grad_accum / jnp.maximum(self.grad_count, 1), 0.0)


@flax.struct.dataclass
class DensifyReport:
  """int32 counts of one densification."""

  num_cloned: jax.Array
  num_split: jax.Array
  num_pruned: jax.Array
  capacity_exhausted: jax.Array  # requests dropped for lack of free slots

  @classmethod
  def zeros(cls) -> "DensifyReport":
    zero = jnp.zeros((), jnp.int32)
    return cls(num_cloned=zero, num_split=zero, num_pruned=zero, capacity_exhausted=zero)


def accumulate_stats(stats: DensifyStats, means2d_grad_bn2: jax.Array, radii_bn: jax.Array, *, width: int, height: int) -> DensifyStats:
  """Adds one step's views to the statistics.

  Args:
    stats: the running statistics.
    means2d_grad_bn2: [B, N, 2] d loss / d means2d in pixels for the B views of a loss that
      is the mean over views. Multiplied by B to get each view's own gradient and by
      (W/2, H/2) to get 3DGS's NDC units, in which its 2e-4 threshold is stated.
    radii_bn: [B, N] screen radii; > 0 marks the Gaussians each view drew.
  """
  num_views = means2d_grad_bn2.shape[0]
  ndc_scale = jnp.asarray([0.5 * width, 0.5 * height], jnp.float32) * num_views
  norms_bn = jnp.linalg.norm(means2d_grad_bn2.astype(jnp.float32) * ndc_scale, axis=-1)
  visible_bn = radii_bn > 0
  return DensifyStats(
      grad_accum=stats.grad_accum + jnp.sum(jnp.where(visible_bn, norms_bn, 0.0), axis=0),
      grad_count=stats.grad_count + jnp.sum(visible_bn, axis=0, dtype=jnp.int32),
      max_radii=jnp.maximum(stats.max_radii, jnp.max(jnp.where(visible_bn, radii_bn, 0), axis=0).astype(jnp.float32)),
  )


def _rows(mask_n: jax.Array, x: jax.Array) -> jax.Array:
  return mask_n.reshape(-1, *([1] * (x.ndim - 1)))


def densify_and_prune(
    gaussians: Gaussians,
    opt_state: Any,
    stats: DensifyStats,
    rng: jax.Array,
    *,
    settings: FitSettings,
    scene_extent: float,
    prune_oversized: jax.Array | bool,
) -> tuple[Gaussians, Any, DensifyStats, DensifyReport]:
  """One clone / split / prune pass (see the module docstring).

  Args:
    gaussians: the buffer (N slots).
    opt_state: the optimizer state of `optim.make_optimizer`; moments of rewritten rows are zeroed.
    stats: statistics gathered since the last densification.
    rng: key for the split samples.
    settings: thresholds (densify_grad_threshold, percent_dense, split_scale_divisor,
      min_opacity, prune_screen_size, prune_world_scale).
    scene_extent: world scale of the scene.
    prune_oversized: also prune screen-size / world-size outliers (3DGS: after the first
      opacity reset).

  Returns:
    (gaussians, opt_state, zeroed stats, report).
  """
  num = gaussians.num
  active_n = gaussians.active
  scales_n3 = gaussians.scales()
  max_scale_n = jnp.max(scales_n3, axis=-1)
  hot_n = active_n & (stats.mean_grad() >= settings.densify_grad_threshold)
  small_n = max_scale_n <= settings.percent_dense * scene_extent
  clone_n = hot_n & small_n
  split_n = hot_n & ~small_n

  # Each request needs one free slot; ranks pair the k-th request with the k-th free slot.
  free_n = ~active_n
  request_rank_n = jnp.cumsum(hot_n) - 1
  free_rank_n = jnp.cumsum(free_n) - 1
  num_granted = jnp.minimum(jnp.sum(hot_n, dtype=jnp.int32), jnp.sum(free_n, dtype=jnp.int32))
  granted_n = hot_n & (request_rank_n < num_granted)
  source_by_rank = jnp.zeros((num,), jnp.int32).at[jnp.where(granted_n, request_rank_n, num)].set(
      jnp.arange(num, dtype=jnp.int32), mode="drop")
  receives_n = free_n & (free_rank_n < num_granted)
  source_n = source_by_rank[jnp.clip(free_rank_n, 0, num - 1)]
  split_granted_n = split_n & granted_n

  # Split samples: mean + R (scale * z), z ~ N(0, I), one per child.
  z_2n3 = jax.random.normal(rng, (2, num, 3), jnp.float32)
  rotations_n33 = rotation_matrices(gaussians.quats)
  samples_2n3 = gaussians.means + jnp.sum(rotations_n33 * (scales_n3 * z_2n3)[:, :, None, :], axis=-1)
  child_log_scales_n3 = gaussians.log_scales - math.log(settings.split_scale_divisor)
  # What slot i hands to its new slot: a copy (clone) or the second sample (split).
  second_means_n3 = jnp.where(_rows(split_n, samples_2n3[1]), samples_2n3[1], gaussians.means)
  second_log_scales_n3 = jnp.where(_rows(split_n, child_log_scales_n3), child_log_scales_n3, gaussians.log_scales)

  def place(current, first_child, second_child):
    """Rows: the second child in receiving slots, the first child in split originals."""
    out = jnp.where(_rows(split_granted_n, current), first_child, current)
    return jnp.where(_rows(receives_n, current), second_child[source_n], out)

  densified = gaussians.replace(
      means=place(gaussians.means, samples_2n3[0], second_means_n3),
      log_scales=place(gaussians.log_scales, child_log_scales_n3, second_log_scales_n3),
      quats=place(gaussians.quats, gaussians.quats, gaussians.quats),
      opacity_logits=place(gaussians.opacity_logits, gaussians.opacity_logits, gaussians.opacity_logits),
      sh=place(gaussians.sh, gaussians.sh, gaussians.sh),
      active=active_n | receives_n,
  )

  rewritten_n = receives_n | split_granted_n
  prune_n = densified.active & (densified.opacities() < settings.min_opacity)
  screen_radii_n = jnp.where(rewritten_n, 0.0, stats.max_radii)
  oversized_n = (screen_radii_n > settings.prune_screen_size) | (
      jnp.max(densified.scales(), axis=-1) > settings.prune_world_scale * scene_extent)
  prune_n = prune_n | (densified.active & oversized_n & jnp.asarray(prune_oversized))
  densified = densified.replace(active=densified.active & ~prune_n)

  opt_state = zero_moment_rows(opt_state, rewritten_n | prune_n)
  report = DensifyReport(
      num_cloned=jnp.sum(clone_n & granted_n, dtype=jnp.int32),
      num_split=jnp.sum(split_granted_n, dtype=jnp.int32),
      num_pruned=jnp.sum(prune_n, dtype=jnp.int32),
      capacity_exhausted=jnp.sum(hot_n, dtype=jnp.int32) - num_granted,
  )
  return densified, opt_state, DensifyStats.zeros(num), report


def reset_opacity(gaussians: Gaussians, opt_state: Any, *, value: float = 0.01) -> tuple[Gaussians, Any]:
  """Caps every active opacity at `value` (3DGS: min(current, 0.01)); zeroes the opacity moments."""
  cap = math.log(value / (1.0 - value))
  logits_n = gaussians.opacity_logits
  capped_n = jnp.where(gaussians.active, jnp.minimum(logits_n, cap), logits_n)
  all_rows = jnp.ones((gaussians.num,), jnp.bool_)
  return gaussians.replace(opacity_logits=capped_n), zero_moment_rows(opt_state, all_rows, fields=("opacity_logits",))


def sh_degree_for_iteration(iteration: jax.Array, *, every: int, max_degree: int) -> jax.Array:
  """int32 SH degree in use at a 3DGS iteration (1-based): min(max_degree, iteration // every)."""
  return jnp.minimum(jnp.asarray(iteration, jnp.int32) // every, max_degree).astype(jnp.int32)


def sh_band_mask(degree: jax.Array, num_coeffs: int) -> jax.Array:
  """[K] float32: 1 for the coefficients of bands <= degree, 0 above (coefficient k is band floor(sqrt(k)))."""
  bands_k = jnp.asarray([math.isqrt(k) for k in range(num_coeffs)], jnp.int32)
  return (bands_k <= degree).astype(jnp.float32)

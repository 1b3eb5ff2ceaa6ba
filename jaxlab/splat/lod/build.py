"""Offline build of a LOD bundle from one asset's Gaussians (V3DG, `Cluster.buildAllLodLayers`).

  LOD0     median-split the Gaussians into clusters of at most n_g (4096).
  repeat   while the current level has more than 2 clusters:
           group its clusters by median-splitting their centres (at most n_c = 2 per group);
           merge each group's Gaussians and halve them (`halve`); fine-tune the halved set
           against the merged one (`local_splat`, all groups of the level batched);
           median-split each result into clusters of at most n_g: the next level.

Sphere bookkeeping: a group's centre c_g is the mean of its merged (finer) Gaussians and
its radius r_g the largest of (a) the distance from c_g to any merged Gaussian, (b) each
member's child radius (V3DG's two terms), and (c) the distance from c_g to the far side
of each member's child sphere. Term (c) nests every child sphere inside its parent; with
it the footprint test is monotone along the hierarchy for every camera that is not
within a sphere's radius in depth (docs/splat.md, "Level of detail"), so the cut is exact.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.splat.gaussians import Gaussians
from jaxlab.splat.lod.bundle import Bundle, check_bundle
from jaxlab.splat.lod.halve import LOG_SCALE_GROWTH, halve_indices, max_halved_size
from jaxlab.splat.lod.local_splat import LocalSplatSettings, local_splat
from jaxlab.splat.lod.median_split import median_split

log = logging.getLogger(__name__)

_FIELDS = ("means", "log_scales", "quats", "opacity_logits", "sh_dc")


@dataclasses.dataclass(frozen=True)
class BuildSettings:
  """V3DG's build defaults: n_g = 4096 Gaussians per cluster, n_c = 2 clusters per group."""

  max_cluster_size: int = 4096
  max_group_size: int = 2
  top_level_clusters: int = 2  # stop once a level has at most this many clusters
  local_splat: LocalSplatSettings = LocalSplatSettings()
  groups_per_batch: int = 1  # groups fine-tuned together by one vmapped program
  seed: int = 0
  max_levels: int = 64

  def __post_init__(self):
    for name in ("max_cluster_size", "max_group_size", "top_level_clusters", "groups_per_batch", "max_levels"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"BuildSettings.{name} must be an int >= 1; got {value!r}")
    if self.max_group_size < 2:
      raise ValueError(f"BuildSettings.max_group_size must be >= 2 (a group of one cluster cannot merge); got {self.max_group_size}")


@dataclasses.dataclass
class _Cluster:
  fields: dict[str, np.ndarray]
  level: int
  child_center: np.ndarray
  child_radius: float
  parent_center: np.ndarray | None = None
  parent_radius: float = float("inf")

  @property
  def size(self) -> int:
    return self.fields["means"].shape[0]

  def center(self) -> np.ndarray:
    return self.fields["means"].astype(np.float64).mean(axis=0)


@dataclasses.dataclass
class BuildReport:
  """What a build did: per level, and in total."""

  gaussians_per_level: list[int]
  clusters_per_level: list[int]
  groups_per_level: list[int]
  first_loss_per_level: list[float]  # mean local-splatting loss over groups: first iteration
  last_loss_per_level: list[float]   # ... and last iteration
  overflow_renders: int               # local-splatting renders that ran out of intersection slots
  seconds: float


def asset_fields(gaussians: Gaussians) -> dict[str, np.ndarray]:
  """Host float32 fields of the active Gaussians, SH reduced to the DC term (bundles are degree 0)."""
  active = np.asarray(gaussians.active, bool)
  fields = {
      "means": np.asarray(gaussians.means, np.float32)[active],
      "log_scales": np.asarray(gaussians.log_scales, np.float32)[active],
      "quats": np.asarray(gaussians.quats, np.float32)[active],
      "opacity_logits": np.asarray(gaussians.opacity_logits, np.float32)[active],
      "sh_dc": np.asarray(gaussians.sh, np.float32)[active][:, 0, :],
  }
  if fields["means"].shape[0] == 0:
    raise ValueError("the asset has no active Gaussians; nothing to build")
  for name, value in fields.items():
    bad = int(np.sum(~np.isfinite(value)))
    if bad:
      raise ValueError(f"the asset's {name} has {bad} non-finite value(s); a bundle needs finite Gaussians")
  return fields


def _take(fields: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
  return {k: v[rows] for k, v in fields.items()}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  return {k: np.concatenate([p[k] for p in parts]) for k in _FIELDS}


def _split_into_clusters(fields, level, max_size, child_center, child_radius) -> list[_Cluster]:
  return [_Cluster(_take(fields, rows), level, child_center, child_radius)
          for rows in median_split(fields["means"], max_size)]


def _padded_gaussians(parts: list[dict[str, np.ndarray]], size: int) -> Gaussians:
  """[B, size] Gaussians: each part's rows, then inactive zero slots (a zero quaternion reads as the identity)."""
  def stack(name):
    out = np.zeros((len(parts), size, *parts[0][name].shape[1:]), np.float32)
    for b, part in enumerate(parts):
      out[b, : part[name].shape[0]] = part[name]
    return jnp.asarray(out)
  sizes = np.array([p["means"].shape[0] for p in parts])
  return Gaussians(means=stack("means"), log_scales=stack("log_scales"), quats=stack("quats"),
                   opacity_logits=stack("opacity_logits"), sh=stack("sh_dc")[:, :, None, :],
                   active=jnp.asarray(np.arange(size)[None] < sizes[:, None]))


def _fine_tune(originals, simplified, centers, camera_radii, settings: BuildSettings, level: int):
  """Runs local splatting over all groups of a level in batches; returns (fitted parts, first, last loss, overflows)."""
  ls = settings.local_splat
  if ls.iterations == 0:
    return simplified, float("nan"), float("nan"), 0
  size_original = settings.max_group_size * settings.max_cluster_size
  size_simplified = max_halved_size(size_original)
  batch = settings.groups_per_batch
  fitted, first, last, overflows = [], [], [], 0
  rng = jax.random.fold_in(jax.random.key(settings.seed), level)
  for begin in range(0, len(simplified), batch):
    idx = list(range(begin, min(begin + batch, len(simplified))))
    # The last batch is filled with repeats of its first group so every call has one shape.
    padded_idx = idx + [idx[0]] * (batch - len(idx))
    out, losses, overflow = local_splat(
        _padded_gaussians([originals[i] for i in padded_idx], size_original),
        _padded_gaussians([simplified[i] for i in padded_idx], size_simplified),
        jnp.asarray(np.stack([centers[i] for i in padded_idx]), jnp.float32),
        jnp.asarray(np.array([camera_radii[i] for i in padded_idx]), jnp.float32),
        jax.random.fold_in(rng, begin), settings=ls)
    losses, overflow = np.asarray(losses), np.asarray(overflow)
    for j, i in enumerate(idx):
      n = simplified[i]["means"].shape[0]
      fitted.append({
          "means": np.asarray(out.means[j, :n]), "log_scales": np.asarray(out.log_scales[j, :n]),
          "quats": np.asarray(out.quats[j, :n]), "opacity_logits": np.asarray(out.opacity_logits[j, :n]),
          "sh_dc": np.asarray(out.sh[j, :n, 0, :]),
      })
      first.append(float(losses[j, 0]))
      last.append(float(losses[j, -1]))
      overflows += int(overflow[j].sum())
  return fitted, float(np.mean(first)), float(np.mean(last)), overflows


def _group_sphere(members: list[_Cluster], merged_means: np.ndarray) -> tuple[np.ndarray, float, float]:
  """(c_g, r_g, max distance of the merged Gaussians from c_g) of a group."""
  center = merged_means.astype(np.float64).mean(axis=0)
  spread = float(np.max(np.linalg.norm(merged_means - center, axis=1)))
  radius = spread
  for m in members:
    if m.child_radius >= 0:
      radius = max(radius, m.child_radius, float(np.linalg.norm(m.child_center - center)) + m.child_radius)
  # A single point would give radius 0; a sphere needs some size for the footprint test.
  return center, max(radius, 1e-6), spread


def build_bundle(gaussians: Gaussians, settings: BuildSettings = BuildSettings()) -> tuple[Bundle, BuildReport]:
  """The LOD bundle of one asset (any SH degree in; degree 0 out) and a report of the build."""
  start_time = time.perf_counter()
  fields = asset_fields(gaussians)
  levels = [[]]
  for rows in median_split(fields["means"], settings.max_cluster_size):
    cluster = _Cluster(_take(fields, rows), 0, np.zeros(3), -1.0)
    cluster.child_center = cluster.center()
    levels[0].append(cluster)
  groups_per_level, first_losses, last_losses, overflow_total = [0], [float("nan")], [float("nan")], 0
  while len(levels[-1]) > settings.top_level_clusters and len(levels) < settings.max_levels:
    current = levels[-1]
    level = len(levels)
    centers = np.stack([c.center() for c in current])
    groups = median_split(centers, settings.max_group_size)
    originals, simplified, spheres, camera_radii = [], [], [], []
    for group in groups:
      members = [current[i] for i in group]
      merged = _concat([m.fields for m in members])
      center, radius, spread = _group_sphere(members, merged["means"])
      for m in members:
        m.parent_center, m.parent_radius = center, radius
      kept = _take(merged, halve_indices(merged["means"], merged["log_scales"], merged["opacity_logits"]))
      kept["log_scales"] = kept["log_scales"] + np.float32(LOG_SCALE_GROWTH)
      originals.append(merged)
      simplified.append(kept)
      spheres.append((center, radius))
      camera_radii.append(settings.local_splat.distance_factor * max(spread, 1e-6))
    log.info("level %d: %d groups of %d clusters, local splatting %d iterations each", level, len(groups), len(current),
             settings.local_splat.iterations)
    fitted, first, last, overflows = _fine_tune(originals, simplified, [s[0] for s in spheres], camera_radii, settings, level)
    overflow_total += overflows
    next_level = []
    for part, (center, radius) in zip(fitted, spheres):
      next_level.extend(_split_into_clusters(part, level, settings.max_cluster_size, center, radius))
    levels.append(next_level)
    groups_per_level.append(len(groups))
    first_losses.append(first)
    last_losses.append(last)
    if sum(c.size for c in next_level) >= sum(c.size for c in current):
      log.warning("level %d did not shrink (%d Gaussians); stopping the hierarchy here", level, sum(c.size for c in next_level))
      break
  for cluster in levels[-1]:
    cluster.parent_center, cluster.parent_radius = cluster.child_center, float("inf")
  if overflow_total:
    log.warning("%d local-splatting renders ran out of intersection capacity (raise "
                "local_splat.intersections_per_gaussian); those steps saw incomplete images", overflow_total)
  bundle = _assemble([c for lvl in levels for c in lvl])
  check_bundle(bundle, where="built bundle")
  report = BuildReport(
      gaussians_per_level=bundle.gaussians_per_level(), clusters_per_level=[len(l) for l in levels],
      groups_per_level=groups_per_level, first_loss_per_level=first_losses, last_loss_per_level=last_losses,
      overflow_renders=overflow_total, seconds=time.perf_counter() - start_time)
  return bundle, report


def _assemble(clusters: list[_Cluster]) -> Bundle:
  fields = _concat([c.fields for c in clusters])
  counts = np.array([c.size for c in clusters], np.int32)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
  num = int(counts.sum())
  gaussians = Gaussians(
      means=fields["means"], log_scales=fields["log_scales"], quats=fields["quats"],
      opacity_logits=fields["opacity_logits"], sh=fields["sh_dc"].reshape(num, 1, 3), active=np.ones((num,), bool))
  f32 = lambda xs: np.asarray(xs, np.float32)
  bounds = [cluster_bound(c.fields) for c in clusters]
  return Bundle(
      gaussians=gaussians,
      level=np.array([c.level for c in clusters], np.int32), start=starts, count=counts,
      child_center=f32([c.child_center for c in clusters]), child_radius=f32([c.child_radius for c in clusters]),
      parent_center=f32([c.parent_center for c in clusters]), parent_radius=f32([c.parent_radius for c in clusters]),
      bound_center=f32([b[0] for b in bounds]), bound_radius=f32([b[1] for b in bounds]))


def cluster_bound(fields: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
  """(centre, radius) of a sphere holding every Gaussian of a cluster out to 3 standard deviations."""
  means = fields["means"].astype(np.float64)
  center = means.mean(axis=0)
  reach = np.linalg.norm(means - center, axis=1) + 3.0 * np.exp(fields["log_scales"].astype(np.float64).max(axis=1))
  # float32 rounding of the centre must not let a Gaussian poke out: a relative margin of 1e-5.
  return center, float(reach.max() * (1 + 1e-5))

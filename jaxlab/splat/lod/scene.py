"""A composed scene: several assets' bundles in one library, placed by many instances.

Nothing is copied per instance: the library holds each asset's bundle once, and a flat
table of (instance, cluster) rows lists every cluster of every instance. The cut
(`jaxlab.splat.lod.cut`) transforms only the rows' spheres each frame and only the
selected Gaussians, so a scene of 10^7 Gaussians at full detail costs the memory of its
assets plus R = sum over instances of their asset's cluster count rows.
"""

from __future__ import annotations

import flax.struct
import jax
import numpy as np

from jaxlab.splat.gaussians import Gaussians
from jaxlab.splat.lod.bundle import Bundle, check_bundle
from jaxlab.splat.lod.instances import Instances, check_instances


@flax.struct.dataclass
class ComposedScene:
  """Bundles of A assets (G Gaussians, C clusters in all) placed by I instances (R rows).

  Attributes:
    gaussians: [G] every asset's bundle Gaussians, asset after asset.
    level, start, count: [C] int32 per library cluster; `start` indexes `gaussians`.
    child_center, parent_center, bound_center: [C, 3]; child_radius, parent_radius,
      bound_radius: [C] (asset space).
    row_instance, row_cluster: [R] int32 (instance, library cluster) of every row.
    instances: the I placements.
  """

  gaussians: Gaussians
  level: jax.Array
  start: jax.Array
  count: jax.Array
  child_center: jax.Array
  child_radius: jax.Array
  parent_center: jax.Array
  parent_radius: jax.Array
  bound_center: jax.Array
  bound_radius: jax.Array
  row_instance: jax.Array
  row_cluster: jax.Array
  instances: Instances

  @property
  def num_rows(self) -> int:
    return int(np.shape(self.row_cluster)[0])

  def full_detail_size(self) -> int:
    """Gaussians drawn at full detail: the LOD0 Gaussians of every instance.

    No cut selects more: a group's halved Gaussians are never more than its members', so
    every coarser cluster stands for at least as many LOD0 Gaussians as it holds. A
    `gaussian_capacity` of this size never overflows.
    """
    rows = np.asarray(self.row_cluster)
    count = np.asarray(self.count)[rows].astype(np.int64)
    return int(np.sum(count[np.asarray(self.level)[rows] == 0]))


def compose_scene(bundles: list[Bundle], instances: Instances, *, names: list[str] | None = None) -> ComposedScene:
  """The scene of `instances` placing `bundles` (each checked; errors name the asset)."""
  if not bundles:
    raise ValueError("a scene needs at least one asset bundle")
  for a, bundle in enumerate(bundles):
    check_bundle(bundle, where=f"asset {names[a]!r}" if names else f"asset {a}")
  check_instances(instances, len(bundles), names=names)
  if instances.num == 0:
    raise ValueError("a scene needs at least one instance")
  gaussian_offsets = np.cumsum([0] + [b.gaussians.num for b in bundles])
  cluster_offsets = np.cumsum([0] + [b.num_clusters for b in bundles])
  cat = lambda get, dtype: np.concatenate([np.asarray(get(b), dtype) for b in bundles])
  gaussians = jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs]), *[b.gaussians for b in bundles])
  start = np.concatenate([np.asarray(b.start, np.int64) + gaussian_offsets[a] for a, b in enumerate(bundles)])
  if gaussian_offsets[-1] >= 2**31:
    raise ValueError(f"the assets hold {gaussian_offsets[-1]} Gaussians; the library indexes them with int32")
  asset = np.asarray(instances.asset)
  sizes = np.diff(cluster_offsets)[asset]
  row_instance = np.repeat(np.arange(instances.num, dtype=np.int32), sizes)
  row_cluster = (np.repeat(cluster_offsets[asset], sizes) + (np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)))
  return ComposedScene(
      gaussians=gaussians, level=cat(lambda b: b.level, np.int32), start=start.astype(np.int32),
      count=cat(lambda b: b.count, np.int32), child_center=cat(lambda b: b.child_center, np.float32),
      child_radius=cat(lambda b: b.child_radius, np.float32), parent_center=cat(lambda b: b.parent_center, np.float32),
      parent_radius=cat(lambda b: b.parent_radius, np.float32), bound_center=cat(lambda b: b.bound_center, np.float32),
      bound_radius=cat(lambda b: b.bound_radius, np.float32), row_instance=row_instance,
      row_cluster=row_cluster.astype(np.int32), instances=instances)

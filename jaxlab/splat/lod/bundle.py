"""A level-of-detail bundle: one asset's Gaussians at every level, cut into clusters.

Layout (V3DG's `clusters.npz` + `gaussians.npz`, in one file here): the Gaussians of all
levels are stored contiguously per cluster; cluster c owns rows start[c] : start[c] + count[c].
Each cluster carries two bounding spheres:

  child sphere  (child_center, child_radius): the group of finer clusters it was made
                from; radius -1 on LOD0 (nothing finer).
  parent sphere (parent_center, parent_radius): the group it was merged into to make the
                next coarser level; radius +inf on the top level (nothing coarser).

A group's sphere is the parent sphere of each of its finer members and the child sphere of
each coarser cluster made from it, so one test per sphere ("is its footprint <= tau?")
puts every part of the asset on exactly one side of the cut (`jaxlab.splat.lod.cut`).

Each cluster also keeps a bounding sphere of its own Gaussians (to 3 standard deviations),
which lets the cut skip clusters outside the view.

`save_bundle` writes one `.npz` (to a temporary name, then renamed); `load_bundle`
validates it with `check_bundle` and names the file in every error.
"""

from __future__ import annotations

import os
import zipfile

import flax.struct
import jax
import numpy as np

from jaxlab.files import atomic_open
from jaxlab.splat.gaussians import Gaussians

BUNDLE_FORMAT = "jaxlab.splat.lod.bundle"
BUNDLE_VERSION = 1
_GAUSSIAN_KEYS = ("means", "log_scales", "quats", "opacity_logits", "sh_dc")
_CLUSTER_KEYS = ("level", "start", "count", "child_center", "child_radius", "parent_center", "parent_radius",
                 "bound_center", "bound_radius")


class BundleError(ValueError):
  """A bundle (in memory or on disk) that breaks the layout above; the message names what."""


@flax.struct.dataclass
class Bundle:
  """One asset's LOD hierarchy. G Gaussians over C clusters; arrays may be NumPy or JAX.

  Attributes:
    gaussians: [G] SH degree 0 Gaussians of every level, contiguous per cluster, all active.
    level: [C] int32 LOD level, 0 = finest.
    start, count: [C] int32 rows of each cluster in `gaussians`.
    child_center, parent_center: [C, 3] sphere centres.
    child_radius: [C] float32; -1 on level 0.
    parent_radius: [C] float32; +inf on the top level.
    bound_center, bound_radius: [C, 3], [C] a sphere holding the cluster's own Gaussians out
      to 3 standard deviations (frustum culling; not part of the cut).
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

  @property
  def num_clusters(self) -> int:
    return int(np.shape(self.level)[0])

  @property
  def num_levels(self) -> int:
    return int(np.max(np.asarray(self.level))) + 1

  def gaussians_per_level(self) -> list[int]:
    """Gaussian count of each level, finest first."""
    level, count = np.asarray(self.level), np.asarray(self.count)
    return [int(count[level == l].sum()) for l in range(self.num_levels)]

  def level_gaussians(self, level: int) -> Gaussians:
    """The Gaussians of one level (host gather), e.g. level 0 = the asset at full detail."""
    on_level = np.asarray(self.level) == level
    rows = np.concatenate([np.arange(s, s + n) for s, n in zip(np.asarray(self.start)[on_level], np.asarray(self.count)[on_level])])
    return jax.tree.map(lambda x: np.asarray(x)[rows], self.gaussians)


def _fail(where: str, message: str) -> BundleError:
  return BundleError(f"{where}: {message}" if where else message)


def _spheres(centers_c3: np.ndarray, radii_c: np.ndarray, rows: np.ndarray) -> set[tuple[float, ...]]:
  return {tuple(centers_c3[i].tolist()) + (float(radii_c[i]),) for i in rows}


def check_bundle(bundle: Bundle, *, where: str = "") -> None:
  """Raises BundleError naming the first broken rule (shapes, ranges, cover, sphere links).

  Rules: SH degree 0 and finite Gaussians; every cluster non-empty and the clusters tiling
  rows 0..G-1 in order; levels 0..L-1 all present; child radius -1 exactly on level 0 and
  > 0 elsewhere; parent radius +inf exactly on the top level and finite and >= the child
  radius elsewhere; the parent spheres of level l are exactly the child spheres of level l+1.
  """
  g = bundle.gaussians
  means = np.asarray(g.means)
  num = means.shape[0] if means.ndim == 2 else -1
  expected = {"means": (num, 3), "log_scales": (num, 3), "quats": (num, 4), "opacity_logits": (num,), "sh": (num, 1, 3)}
  for name, shape in expected.items():
    value = np.asarray(getattr(g, name))
    if value.shape != shape:
      detail = " (bundles hold SH degree 0 only)" if name == "sh" else ""
      raise _fail(where, f"gaussians.{name} has shape {value.shape}, expected {shape}{detail}")
    if not np.all(np.isfinite(value)):
      raise _fail(where, f"gaussians.{name} has {int(np.sum(~np.isfinite(value)))} non-finite value(s)")
  if num == 0:
    raise _fail(where, "the bundle holds no Gaussians")
  arrays = {k: np.asarray(getattr(bundle, k)) for k in _CLUSTER_KEYS}
  num_clusters = arrays["level"].shape[0] if arrays["level"].ndim == 1 else -1
  shapes = {"level": (num_clusters,), "start": (num_clusters,), "count": (num_clusters,), "child_center": (num_clusters, 3),
            "child_radius": (num_clusters,), "parent_center": (num_clusters, 3), "parent_radius": (num_clusters,),
            "bound_center": (num_clusters, 3), "bound_radius": (num_clusters,)}
  for name, shape in shapes.items():
    if arrays[name].shape != shape:
      raise _fail(where, f"{name} has shape {arrays[name].shape}, expected {shape}")
  if num_clusters < 1:
    raise _fail(where, "the bundle has no clusters")
  level, start, count = arrays["level"], arrays["start"], arrays["count"]
  if np.any(count < 1):
    raise _fail(where, f"cluster {int(np.argmax(count < 1))} is empty (count {int(count[np.argmax(count < 1)])})")
  ends = np.cumsum(count)
  if start[0] != 0 or np.any(start[1:] != ends[:-1]) or ends[-1] != num:
    bad = int(np.argmax(np.concatenate([[start[0] != 0], start[1:] != ends[:-1]]))) if ends[-1] == num else num_clusters - 1
    raise _fail(where, f"clusters do not tile the {num} Gaussians in order (first mismatch at cluster {bad}; "
                       f"counts sum to {int(ends[-1])})")
  top = int(level.max())
  missing = sorted(set(range(top + 1)) - set(level.tolist()))
  if level.min() < 0 or missing:
    raise _fail(where, f"levels must be 0..{top} each with a cluster; missing {missing or 'none'}, min {int(level.min())}")
  for name in ("child_center", "parent_center", "bound_center"):
    if not np.all(np.isfinite(arrays[name])):
      raise _fail(where, f"{name} has non-finite values")
  bad_bound = np.flatnonzero(~(np.isfinite(arrays["bound_radius"]) & (arrays["bound_radius"] >= 0)))
  if bad_bound.size:
    raise _fail(where, f"cluster {int(bad_bound[0])} has bound_radius {arrays['bound_radius'][bad_bound[0]]}; it must be finite and >= 0")
  child_r, parent_r = arrays["child_radius"], arrays["parent_radius"]
  wrong_child = np.flatnonzero(((level == 0) != (child_r == -1)) | ((level > 0) & ~(child_r > 0)))
  if wrong_child.size:
    c = int(wrong_child[0])
    raise _fail(where, f"cluster {c} (level {int(level[c])}) has child_radius {child_r[c]}; "
                       "it must be -1 on level 0 and finite > 0 above")
  wrong_parent = np.flatnonzero(((level == top) != np.isposinf(parent_r)) | ((level < top) & ~np.isfinite(parent_r)))
  if wrong_parent.size:
    c = int(wrong_parent[0])
    raise _fail(where, f"cluster {c} (level {int(level[c])} of top {top}) has parent_radius {parent_r[c]}; "
                       "it must be +inf exactly on the top level")
  not_monotone = np.flatnonzero((level < top) & (level > 0) & (parent_r < child_r))
  if not_monotone.size:
    c = int(not_monotone[0])
    raise _fail(where, f"cluster {c}: parent_radius {parent_r[c]} < child_radius {child_r[c]} (radii must grow up the hierarchy)")
  for l in range(top):
    parents = _spheres(arrays["parent_center"], parent_r, np.flatnonzero(level == l))
    children = _spheres(arrays["child_center"], child_r, np.flatnonzero(level == l + 1))
    if parents != children:
      raise _fail(where, f"the parent spheres of level {l} ({len(parents)}) are not the child spheres of level {l + 1} "
                         f"({len(children)}): the cut would leave holes or draw parts twice")


def _as_arrays(bundle: Bundle) -> dict[str, np.ndarray]:
  g = bundle.gaussians
  out = {
      "format": np.asarray(BUNDLE_FORMAT), "version": np.asarray(BUNDLE_VERSION),
      "means": np.asarray(g.means, np.float32), "log_scales": np.asarray(g.log_scales, np.float32),
      "quats": np.asarray(g.quats, np.float32), "opacity_logits": np.asarray(g.opacity_logits, np.float32),
      "sh_dc": np.asarray(g.sh, np.float32)[:, 0, :],
  }
  for key in _CLUSTER_KEYS:
    dtype = np.int32 if key in ("level", "start", "count") else np.float32
    out[key] = np.asarray(getattr(bundle, key), dtype)
  return out


def save_bundle(path: str | os.PathLike, bundle: Bundle, *, overwrite: bool = True) -> None:
  """Writes `bundle` (checked first) as one .npz at `path`, atomically."""
  check_bundle(bundle, where="bundle to save")
  with atomic_open(path, "wb", overwrite=overwrite) as stream:
    np.savez(stream, **_as_arrays(bundle))


def bundle_from_arrays(arrays: dict[str, np.ndarray]) -> Bundle:
  """A Bundle from the arrays `save_bundle` writes (no checks)."""
  num = arrays["means"].shape[0]
  gaussians = Gaussians(
      means=arrays["means"], log_scales=arrays["log_scales"], quats=arrays["quats"],
      opacity_logits=arrays["opacity_logits"], sh=arrays["sh_dc"].reshape(num, 1, 3), active=np.ones((num,), bool))
  return Bundle(gaussians=gaussians, **{k: arrays[k] for k in _CLUSTER_KEYS})


def load_bundle(path: str | os.PathLike) -> Bundle:
  """The bundle saved at `path`, as NumPy arrays; BundleError naming `path` if it is damaged or foreign."""
  path = os.fspath(path)
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {key: data[key] for key in data.files}
  except FileNotFoundError:
    raise
  except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as e:
    raise BundleError(f"{path}: not a readable bundle file ({type(e).__name__}: {e})") from e
  if str(arrays.get("format", "")) != BUNDLE_FORMAT:
    raise BundleError(f"{path}: not a jaxlab LOD bundle (format field {str(arrays.get('format', 'missing'))!r})")
  version = int(arrays.get("version", -1))
  if version != BUNDLE_VERSION:
    raise BundleError(f"{path}: bundle version {version}, this jaxlab reads version {BUNDLE_VERSION}; rebuild the bundle")
  missing = [k for k in _GAUSSIAN_KEYS + _CLUSTER_KEYS if k not in arrays]
  if missing:
    raise BundleError(f"{path}: missing arrays {missing}")
  if arrays["sh_dc"].ndim != 2 or arrays["sh_dc"].shape[1:] != (3,) or arrays["means"].ndim != 2:
    raise BundleError(f"{path}: sh_dc {arrays['sh_dc'].shape} / means {arrays['means'].shape} are not [G, 3]")
  bundle = bundle_from_arrays(arrays)
  check_bundle(bundle, where=path)
  return bundle

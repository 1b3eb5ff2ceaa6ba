"""Layout files: which assets a scene places, and where (V3DG's `_layout-descriptions`).

A layout is JSON: a list of assets (or {"assets": [...]}), each with its instances:

  {"assets": [
     {"name": "donut", "bundle": "bundles/donut.npz",
      "instances": [{"scale": 1.0, "quaternion": [1, 0, 0, 0], "translation": [0, 0, 0]}, ...]}]}

`bundle` is a path relative to the layout file (or absolute). Each instance gives a
uniform scale, a (w, x, y, z) quaternion and a translation; V3DG's key names
`quaternions` and `positions` are read too. `read_layout` checks every entry before any
bundle is loaded, naming the asset and instance at fault; `write_layout` writes atomically.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np

from jaxlab.files import write_json
from jaxlab.splat.lod.bundle import Bundle, load_bundle
from jaxlab.splat.lod.instances import Instances, make_instances, quaternion_product

_QUAT_KEYS = ("quaternion", "quaternions")
_TRANSLATION_KEYS = ("translation", "positions")


class LayoutError(ValueError):
  """A layout entry that cannot be placed; the message names the file, asset and instance."""


@dataclasses.dataclass(frozen=True)
class Layout:
  names: list[str]          # one per asset
  bundle_paths: list[str]   # absolute
  instances: Instances

  def load_bundles(self) -> list[Bundle]:
    return [load_bundle(path) for path in self.bundle_paths]


def _number_list(value, length: int) -> list[float] | None:
  if not isinstance(value, (list, tuple)) or len(value) != length:
    return None
  if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
    return None
  return [float(v) for v in value]


def _one_of(entry: dict, keys: tuple[str, ...]):
  for key in keys:
    if key in entry:
      return entry[key]
  return None


def _read_instance(entry, where: str) -> tuple[float, list[float], list[float]]:
  if not isinstance(entry, dict):
    raise LayoutError(f"{where}: an instance must be an object with scale, quaternion and translation")
  scale = entry.get("scale", 1.0)
  if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
    raise LayoutError(f"{where}: scale {scale!r} must be a finite number > 0")
  quat = _number_list(_one_of(entry, _QUAT_KEYS), 4)
  if quat is None:
    raise LayoutError(f"{where}: quaternion must be 4 numbers (w, x, y, z); got {_one_of(entry, _QUAT_KEYS)!r}")
  if not all(math.isfinite(q) for q in quat) or math.sqrt(sum(q * q for q in quat)) < 1e-8:
    raise LayoutError(f"{where}: quaternion {quat} must be finite and non-zero")
  translation = _number_list(_one_of(entry, _TRANSLATION_KEYS), 3)
  if translation is None or not all(math.isfinite(t) for t in translation):
    raise LayoutError(f"{where}: translation must be 3 finite numbers; got {_one_of(entry, _TRANSLATION_KEYS)!r}")
  return float(scale), quat, translation


def read_layout(path: str | os.PathLike) -> Layout:
  """The checked layout at `path`; bundles are found but not loaded (`Layout.load_bundles`)."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"layout file {path} does not exist")
  try:
    with open(path, encoding="utf-8") as f:
      value = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise LayoutError(f"{path}: not valid UTF-8 JSON ({e})") from None
  assets = value.get("assets") if isinstance(value, dict) else value
  if not isinstance(assets, list) or not assets:
    raise LayoutError(f"{path}: expected a non-empty list of assets (or an object with 'assets')")
  base = os.path.dirname(os.path.abspath(path))
  names, bundle_paths, asset_ids, scales, quats, translations = [], [], [], [], [], []
  for a, asset in enumerate(assets):
    if not isinstance(asset, dict):
      raise LayoutError(f"{path}: asset {a} must be an object")
    name = str(asset.get("name", f"asset{a}"))
    where = f"{path}: asset {name!r}"
    bundle = asset.get("bundle")
    if not isinstance(bundle, str) or not bundle:
      raise LayoutError(f"{where}: needs a 'bundle' path (build one with configs/v3dg_build.py)")
    bundle_path = bundle if os.path.isabs(bundle) else os.path.join(base, bundle)
    if not os.path.isfile(bundle_path):
      raise LayoutError(f"{where}: bundle file {bundle_path} does not exist")
    instances = asset.get("instances")
    if not isinstance(instances, list) or not instances:
      raise LayoutError(f"{where}: has no instances (an asset must be placed at least once)")
    for i, entry in enumerate(instances):
      scale, quat, translation = _read_instance(entry, f"{where}, instance {i}")
      asset_ids.append(a)
      scales.append(scale)
      quats.append(quat)
      translations.append(translation)
    names.append(name)
    bundle_paths.append(bundle_path)
  return Layout(names=names, bundle_paths=bundle_paths,
                instances=make_instances(asset_ids, scales, quats, translations))


def write_layout(path: str | os.PathLike, names: list[str], bundle_paths: list[str], instances: Instances) -> None:
  """Writes a layout (bundle paths stored relative to the layout's folder when possible)."""
  base = os.path.dirname(os.path.abspath(path))
  asset = np.asarray(instances.asset)
  assets = []
  for a, (name, bundle) in enumerate(zip(names, bundle_paths)):
    rows = np.flatnonzero(asset == a)
    assets.append({
        "name": name,
        "bundle": os.path.relpath(os.path.abspath(bundle), base),
        "instances": [{"scale": float(instances.scale[i]), "quaternion": np.asarray(instances.quat[i], float).tolist(),
                       "translation": np.asarray(instances.translation[i], float).tolist()} for i in rows],
    })
  write_json(path, {"assets": assets})


def donut_sea_instances(num: int, *, spacing: float = 3.2, seed: int = 0, num_assets: int = 1) -> Instances:
  """A DonutSea-like placement: `num` instances on a jittered square grid in the z = 0 plane.

  Each instance gets a random yaw and a tilt of up to 25 degrees, a scale in [0.8, 1.2], and
  a height jitter, so copies never look alike from a camera; assets are assigned at random.
  """
  rng = np.random.default_rng(seed)
  side = math.ceil(math.sqrt(num))
  ij = np.stack(np.unravel_index(np.arange(num), (side, side)), -1).astype(np.float64)
  xy = (ij - (side - 1) / 2) * spacing + rng.uniform(-0.25, 0.25, (num, 2)) * spacing
  translation = np.concatenate([xy, rng.uniform(-0.3, 0.3, (num, 1))], -1)
  yaw = rng.uniform(0, 2 * math.pi, num)
  tilt = np.radians(rng.uniform(0, 25, num))
  tilt_axis = rng.uniform(0, 2 * math.pi, num)
  q_yaw = np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], -1)
  q_tilt = np.stack([np.cos(tilt / 2), np.sin(tilt / 2) * np.cos(tilt_axis), np.sin(tilt / 2) * np.sin(tilt_axis), 0 * tilt], -1)
  # q_tilt * q_yaw: spin about the donut's axis, then tilt it.
  quat = np.asarray(quaternion_product(q_tilt, q_yaw), np.float64)
  return make_instances(rng.integers(0, num_assets, num), rng.uniform(0.8, 1.2, num), quat, translation)

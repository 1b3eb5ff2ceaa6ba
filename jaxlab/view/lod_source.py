"""A level-of-detail scene (V3DG bundles, `jaxlab.splat.lod`) as a viewer source, drawn with the footprint cut."""

from __future__ import annotations

import math
import pathlib
import threading

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.splat.camera import Camera
from jaxlab.splat.gaussians import rotation_matrices
from jaxlab.splat.lod import ComposedScene, compose_scene, load_bundle, make_instances, read_layout, render_cut
from jaxlab.splat.render import RenderOutput
from jaxlab.view.capacity import MAX_CAPACITY, grown_capacity, power_of_two_at_least
from jaxlab.view.errors import SourceError, naming
from jaxlab.view.presets import CameraPreset, presets_around

BUNDLE_FILE = "bundle.npz"  # what configs/v3dg_build.py writes
LAYOUT_FILE = "layout.json"
TAU_RANGE = (1.0, 1e6)  # pixels^2: a sphere of about 0.6 px to 560 px radius
DEFAULT_TAU = 2048.0  # V3DG's default (docs/lod.md)
# Intersection capacity: a power of two, at least this many per 16x16 tile to start with.
_START_PAIRS_PER_TILE = 64
_MIN_CAPACITY = 1 << 12
# The six axis extremes of a bounding sphere: presets then frame clusters, not only their centres.
_AXES_63 = np.concatenate([np.eye(3), -np.eye(3)])


def resolve_scene_file(path: pathlib.Path) -> pathlib.Path:
  """The bundle or layout file a path means: itself, or a folder's layout.json (else bundle.npz)."""
  if not path.exists():
    raise SourceError(f"{path} does not exist")
  if path.is_dir():
    found = next((path / name for name in (LAYOUT_FILE, BUNDLE_FILE) if (path / name).is_file()), None)
    if found is None:
      raise SourceError(f"{path} holds neither {LAYOUT_FILE} nor {BUNDLE_FILE}")
    return found
  if path.suffix.lower() not in (".npz", ".json"):
    raise SourceError(f"{path}: a LOD scene is a bundle .npz or a layout .json")
  return path


def load_scene(path: pathlib.Path) -> tuple[ComposedScene, int]:
  """(scene, number of assets) of a bundle (one instance at identity) or a layout file; SourceError naming the file."""
  try:
    if path.suffix.lower() == ".npz":
      bundles, names = [load_bundle(path)], [path.stem]
      instances = make_instances([0], [1.0], [[1.0, 0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]])
    else:
      layout = read_layout(path)
      bundles, names, instances = layout.load_bundles(), layout.names, layout.instances
    return compose_scene(bundles, instances, names=names), len(bundles)
  except (ValueError, OSError) as e:  # BundleError and LayoutError are ValueErrors and name the file
    raise naming(path, e) from None


def lod0_points(scene: ComposedScene) -> np.ndarray:
  """float64 [7 R0, 3]: the placed centre and six axis extremes of every LOD0 row's bounding sphere."""
  rows = np.flatnonzero(np.asarray(scene.level)[np.asarray(scene.row_cluster)] == 0)
  cluster = np.asarray(scene.row_cluster)[rows]
  instance = np.asarray(scene.row_instance)[rows]
  inst = scene.instances
  scale = np.asarray(inst.scale, np.float64)[instance]
  rotation = np.asarray(rotation_matrices(jnp.asarray(inst.quat)), np.float64)[instance]
  centers = np.einsum("rij,rj->ri", rotation, np.asarray(scene.bound_center, np.float64)[cluster])
  centers = scale[:, None] * centers + np.asarray(inst.translation, np.float64)[instance]
  radii = scale * np.asarray(scene.bound_radius, np.float64)[cluster]
  extremes = centers[:, None, :] + radii[:, None, None] * _AXES_63[None]
  return np.concatenate([centers, extremes.reshape(-1, 3)])


class LodSource:
  """A bundle, a layout, or a folder holding one; `render(camera, tau, background)` draws the cut."""

  kind = "lod"
  tau_range = TAU_RANGE
  default_tau = DEFAULT_TAU

  def __init__(self, path: str | pathlib.Path):
    self.path = pathlib.Path(path)
    self.scene_file = resolve_scene_file(self.path)
    scene, self.num_assets = load_scene(self.scene_file)
    self.full_detail_size: int = scene.full_detail_size()  # never overflows the cut's buffer
    self.presets: list[CameraPreset] = presets_around(lod0_points(scene))
    self.scene: ComposedScene = jax.device_put(scene)  # once, not at every frame
    self.background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    self._capacity: dict[tuple[int, int], int] = {}  # (width, height) -> intersection capacity
    self._lock = threading.Lock()
    self._last_drawn: tuple[float, int] | None = None

  def _start_capacity(self, camera: Camera) -> int:
    tiles = math.ceil(camera.width / 16) * math.ceil(camera.height / 16)
    return max(_MIN_CAPACITY, power_of_two_at_least(tiles * _START_PAIRS_PER_TILE))

  def render(self, camera: Camera, tau: float, background=None) -> tuple[RenderOutput, int]:
    """(image of the cut at tolerance `tau` pixels^2, Gaussians drawn) for one camera.

    One compile per image size and capacity (`render_cut` traces camera and tau). The
    intersection capacity starts at a power of two and grows (`capacity.py`) until the frame
    fits, so no frame is shown incomplete.
    """
    background_3 = jnp.asarray(self.background if background is None else background, jnp.float32)
    key = (camera.width, camera.height)
    with self._lock:
      capacity = self._capacity.get(key) or self._start_capacity(camera)
      while True:
        out = render_cut(self.scene, camera, jnp.float32(tau), gaussian_capacity=self.full_detail_size,
                         intersection_capacity=capacity, background=background_3, on_overflow="ignore")
        if not bool(out.image.overflow) or capacity >= MAX_CAPACITY:
          break
        capacity = grown_capacity(capacity, int(out.image.num_intersections))
      self._capacity[key] = capacity
      drawn = int(out.selection.num_gaussians)
      self._last_drawn = (float(tau), drawn)
    return out.image, drawn

  def status(self) -> str:
    scene = self.scene
    text = (f"{self.num_assets} asset(s), {scene.instances.num:,} instance(s), "
            f"{self.full_detail_size:,} Gaussians at full detail, from {self.scene_file.name}")
    if self._last_drawn is not None:
      tau, drawn = self._last_drawn
      text += f"; tau {tau:g} px²: {drawn:,} drawn"
    return text

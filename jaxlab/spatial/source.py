"""The engine as a deterministic random-access source (grain `MapDataset`-compatible) over scene specs.

Element i belongs to scene `i // items_per_scene`; its subtask cycles through that scene's subtasks
(`i % items_per_scene`), so every scene contributes equally to each of its subtasks. Each element is
a pure function of (seed, i): the scene is rebuilt or read from its spec, planned, and the question
drawn with `np.random.default_rng([seed, scene, item, attempt])`, so any process or worker computes
the same element. A draw that raises `Skip` is retried with the next attempt number (up to
`max_attempts`); the element carries the skip reasons and, when every attempt failed, no sample.

Scene specs: ("room", seed) and ("track", seed, source) for the embedded generator,
("scannet", scene_dir) and ("tapvid3d", npz_path) for the readers.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence

import numpy as np

from jaxlab.spatial.engine import build_question, plan_scene, scene_subtasks
from jaxlab.spatial.plans import EngineConfig
from jaxlab.spatial.sample import Skip

SceneSpec = tuple


def load_scene(spec: SceneSpec, *, height: int, width: int, num_frames: int):
  """The scene a spec names (module docstring)."""
  kind = spec[0]
  if kind == "room":
    from jaxlab.spatial.rooms import make_room_scene
    return make_room_scene(int(spec[1]), height=height, width=width, num_frames=num_frames)
  if kind == "track":
    from jaxlab.spatial.rooms import make_track_scene
    return make_track_scene(int(spec[1]), str(spec[2]), height=height, width=width, num_frames=num_frames)
  if kind == "scannet":
    from jaxlab.spatial.scannet import read_scannet_scene
    return read_scannet_scene(spec[1], image_size=(height, width), max_frames=num_frames)
  if kind == "tapvid3d":
    from jaxlab.spatial.tapvid3d import read_tapvid3d_npz
    return read_tapvid3d_npz(spec[1], max_frames=num_frames)
  raise ValueError(f"unknown scene spec {spec!r}: the kinds are room, track, scannet, tapvid3d")


class MultiSpaSource:
  """`source[i] -> {"sample": QASample | None, "subtask": str, "skips": [reason, ...]}` (module docstring)."""

  def __init__(self, scenes: Sequence[SceneSpec], *, items_per_scene: int, seed: int = 0,
               config: EngineConfig = EngineConfig(), height: int = 96, width: int = 128, num_frames: int = 16,
               max_attempts: int = 6, id_prefix: str = "multispa", cache_scenes: int = 2):
    if not scenes:
      raise ValueError("MultiSpaSource needs at least one scene spec")
    if items_per_scene < 1:
      raise ValueError(f"items_per_scene must be >= 1, got {items_per_scene}")
    self.scenes, self.items_per_scene, self.seed = tuple(tuple(s) for s in scenes), int(items_per_scene), int(seed)
    self.config, self.height, self.width, self.num_frames = config, int(height), int(width), int(num_frames)
    self.max_attempts, self.id_prefix, self.cache_scenes = int(max_attempts), id_prefix, int(cache_scenes)
    self._init_cache()

  def _init_cache(self):
    self._lock = threading.Lock()
    self._plan_cached = functools.lru_cache(maxsize=self.cache_scenes)(self._make_plan)

  def _plan(self, scene_index: int):
    with self._lock:  # Readers on several threads plan each scene once.
      return self._plan_cached(scene_index)

  def __len__(self) -> int:
    return len(self.scenes) * self.items_per_scene

  def _make_plan(self, scene_index: int):
    spec = self.scenes[scene_index]
    scene = load_scene(spec, height=self.height, width=self.width, num_frames=self.num_frames)
    return plan_scene(scene, self.config, self.seed + 7919 * scene_index)

  def __getstate__(self):  # The plan cache and lock stay behind when workers get a copy.
    state = dict(self.__dict__)
    del state["_plan_cached"], state["_lock"]
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._init_cache()

  def subtask_of(self, index: int) -> str:
    scene_index, item = divmod(int(index), self.items_per_scene)
    options = scene_subtasks(self._plan(scene_index))
    return options[item % len(options)]

  def __getitem__(self, index: int) -> dict:
    index = int(index)
    if not 0 <= index < len(self):
      raise IndexError(f"index {index} outside [0, {len(self)})")
    scene_index, item = divmod(index, self.items_per_scene)
    plan = self._plan(scene_index)
    options = scene_subtasks(plan)
    subtask = options[item % len(options)]
    skips = []
    for attempt in range(self.max_attempts):
      rng = np.random.default_rng([self.seed, scene_index, item, attempt])
      try:
        sample = build_question(plan, subtask, rng, f"{self.id_prefix}-{index:07d}", self.config)
        return {"sample": sample, "subtask": subtask, "skips": skips}
      except Skip as e:
        skips.append(str(e))
    return {"sample": None, "subtask": subtask, "skips": skips}

"""Per-scene work shared by every question of a scene: visibility, frame pairs, rigid groups, movement draws.

`plan_static` projects the scene's surface points into every frame (depth test), keeps frame pairs
whose overlap (IoU of visible points) lies in [6 %, 35 %], balanced over 1 % bins. `plan_tracks`
groups the track points into rigid bodies and draws (point, frame, frame) triples balanced over
displacement bins. Plans are deterministic functions of the scene, the config and the seed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxlab.spatial import geometry, rigid_groups, sampling
from jaxlab.spatial.scene import StaticScene, TrackScene


@dataclasses.dataclass(frozen=True)
class EngineConfig:
  """How questions are drawn (defaults follow the paper where it gives them).

  overlap_low, overlap_high, overlap_bin: the frame-pair overlap range and its sampling bins.
  num_pairs: frame pairs kept per static scene.
  depth_tolerance: metres a point may lie behind the depth map and still count as visible.
  dot_radius: visual-prompt radius in pixels (None: 10 px at 1296 px width, scaled, at least 2).
  max_cover_images: most images in an object-size question (the paper uses two).
  min_translation_m, min_angle_deg: smallest camera motion component a direction question is asked
    about (smaller ones are below what the images can show; those pairs are skipped and counted).
  min_depth_gap: relative depth difference two compared points must have.
  movement_candidates, movement_bin_m, min_movement_m: object-movement draws per track scene, the
    displacement bin width of their balanced sampling, and the displacement below which a point
    counts as static (the paper's code: 1 cm).
  """

  overlap_low: float = 0.06
  overlap_high: float = 0.35
  overlap_bin: float = 0.01
  num_pairs: int = 64
  depth_tolerance: float = 0.05
  dot_radius: int | None = None
  max_cover_images: int = 2
  min_translation_m: float = 0.05
  min_angle_deg: float = 3.0
  min_depth_gap: float = 0.1
  movement_candidates: int = 256
  movement_bin_m: float = 0.05
  min_movement_m: float = 0.01


@dataclasses.dataclass(frozen=True, eq=False)
class StaticPlan:
  """scene, visible_fn (bool [F, N]: point n seen by frame f) and pairs [(i, j, overlap)]."""

  scene: StaticScene
  visible_fn: np.ndarray
  pairs: tuple[tuple[int, int, float], ...]


@dataclasses.dataclass(frozen=True, eq=False)
class TrackPlan:
  """scene, rigid groups (point indices) and movement draws [(point, t1, t2, displacement metres)]."""

  scene: TrackScene
  groups: tuple[np.ndarray, ...]
  draws: tuple[tuple[int, int, int, float], ...]


def plan_static(scene: StaticScene, config: EngineConfig, seed: int) -> StaticPlan:
  rng = np.random.default_rng([seed, 0])
  visible_fn = np.stack([geometry.visible_mask(scene.points_world_n3, f, depth_tolerance=config.depth_tolerance)
                         for f in scene.frames])
  pairs = sampling.select_frame_pairs(list(visible_fn), num_pairs=config.num_pairs, rng=rng,
                                      low=config.overlap_low, high=config.overlap_high, bin_width=config.overlap_bin)
  return StaticPlan(scene, visible_fn, tuple(pairs))


def plan_tracks(scene: TrackScene, config: EngineConfig, seed: int) -> TrackPlan:
  rng = np.random.default_rng([seed, 1])
  groups = tuple(rigid_groups.rigid_groups(scene.points_world_tn3, scene.visible_tn))
  candidates: list[tuple[int, int, int, float]] = []
  if groups:
    for _ in range(config.movement_candidates):
      group = groups[int(rng.integers(len(groups)))]  # Every rigid body equally often, whatever its size.
      point = int(group[int(rng.integers(len(group)))])
      seen = np.flatnonzero(scene.visible_tn[:, point])
      if len(seen) < 2:
        continue
      t1, t2 = (int(t) for t in rng.choice(seen, 2, replace=False))
      shift = float(np.linalg.norm(scene.points_world_tn3[t2, point] - scene.points_world_tn3[t1, point]))
      candidates.append((point, t1, t2, shift))
  draws: tuple[tuple[int, int, int, float], ...] = ()
  if candidates:
    shifts = np.array([c[3] for c in candidates])
    high = max(float(shifts.max()), config.min_movement_m + config.movement_bin_m)
    keep = sampling.balanced_bin_sample(shifts, low=config.min_movement_m, high=high, bin_width=config.movement_bin_m,
                                        total=len(candidates), rng=rng)
    draws = tuple(candidates[int(i)] for i in keep)
  return TrackPlan(scene, groups, draws)

"""Minimal frame sets that together show an object's whole height, width or length (object-size subtasks).

Definition, following the reference engine's coverage finder as far as the data model allows:

- The object's points are the scene points with `point_object_ids_n == object_id`; a frame sees those
  for which `geometry.visible_mask` holds.
- Candidate frames see at least 5 % of the object's points (at least one point).
- The axis: height = world z; length = the longer and width = the shorter of the box's x and y extents
  (x for length when they tie), as `SceneObject` defines the sizes. The target is the object's box extent
  along that axis.
- A frame set covers the dimension when the union of the object points its frames see spans, along that
  axis (max - min), the target within `size_tolerance` (10 %) of it: both ends of the dimension are seen.
- A covering set is minimal when no proper subset covers. Sets are found breadth first, k = 1..max_k,
  frames in index order; a set holding a covering set is skipped, and a set is not grown when even
  adding every later candidate frame could not make it cover.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxlab.spatial import geometry
from jaxlab.spatial.scene import SceneError, StaticScene

DIMENSIONS = ("height", "width", "length")
MIN_VISIBLE_FRACTION = 0.05
SIZE_TOLERANCE = 0.1


def dimension_axis(extent_3: Sequence[float], dimension: str) -> int:
  """The world axis (0 = x, 1 = y, 2 = z) along which an axis-aligned box's `dimension` is measured."""
  if dimension not in DIMENSIONS:
    raise ValueError(f"dimension must be one of {DIMENSIONS}, got {dimension!r}")
  if dimension == "height":
    return 2
  longer_is_x = extent_3[0] >= extent_3[1]
  if dimension == "length":
    return 0 if longer_is_x else 1
  return 1 if longer_is_x else 0


def _span(coords: np.ndarray, mask: np.ndarray) -> float:
  if not mask.any():
    return 0.0
  seen = coords[mask]
  return float(seen.max() - seen.min())


def covering_sets(scene: StaticScene, object_id: int, dimension: str, *, max_k: int = 2, max_sets: int = 64,
                  depth_tolerance: float = 0.05, size_tolerance: float = SIZE_TOLERANCE,
                  max_candidates: int = 32) -> list[tuple[int, ...]]:
  """Minimal sets of frame indices that jointly show the object's extent along `dimension`.

  Sets come smallest first, then in frame-index order; at most `max_sets` of them. The definition of
  "cover" is in the module docstring. The search grows as C(candidates, k), so at most `max_candidates`
  candidate frames are kept, evenly spaced through the frame order (the reference draws 25 at random).
  """
  if max_k < 1:
    raise ValueError(f"max_k must be >= 1, got {max_k}")
  if max_sets < 1 or max_candidates < 1:
    raise ValueError(f"max_sets and max_candidates must be >= 1, got {max_sets} and {max_candidates}")
  try:
    obj = scene.object_by_id(object_id)
  except KeyError as err:
    raise SceneError(err.args[0]) from None
  axis = dimension_axis(obj.extent_3, dimension)
  target = float(obj.extent_3[axis])
  object_points_p3 = scene.points_world_n3[scene.point_object_ids_n == object_id]
  if len(object_points_p3) == 0:
    raise SceneError(f"scene {scene.name!r}: object {object_id} ({obj.label!r}) has no points")
  coords_p = object_points_p3[:, axis]

  min_seen = max(1, int(MIN_VISIBLE_FRACTION * len(object_points_p3)))
  candidates: list[int] = []
  seen_cp: list[np.ndarray] = []
  for index, frame in enumerate(scene.frames):
    seen_p = geometry.visible_mask(object_points_p3, frame, depth_tolerance=depth_tolerance)
    if np.count_nonzero(seen_p) >= min_seen:
      candidates.append(index)
      seen_cp.append(seen_p)
  if not candidates:
    return []
  if len(candidates) > max_candidates:
    keep = np.unique(np.round(np.linspace(0, len(candidates) - 1, max_candidates)).astype(int))
    candidates = [candidates[i] for i in keep]
    seen_cp = [seen_cp[i] for i in keep]

  def covers(mask_p: np.ndarray) -> bool:
    return abs(_span(coords_p, mask_p) - target) <= size_tolerance * target

  # later_c[c]: points seen by candidate c or any later one (the most a set ending at c can still gain).
  later_cp = np.logical_or.accumulate(np.stack(seen_cp)[::-1], axis=0)[::-1]
  found: list[tuple[int, ...]] = []  # positions into `candidates`
  level = [((c,), seen_cp[c]) for c in range(len(candidates))]
  for k in range(1, max_k + 1):
    grow = []
    for combo, mask_p in level:
      if any(set(small).issubset(combo) for small in found):
        continue
      if covers(mask_p):
        found.append(combo)
        if len(found) == max_sets:
          return [tuple(candidates[c] for c in combo) for combo in found]
        continue
      last = combo[-1]
      # Spans only grow with more frames: grow a set only if all later frames together could reach.
      if last + 1 < len(candidates) and (
          _span(coords_p, mask_p | later_cp[last + 1]) >= (1.0 - size_tolerance) * target):
        grow.append((combo, mask_p))
    if k == max_k:
      break
    level = [(combo + (c,), mask_p | seen_cp[c]) for combo, mask_p in grow
             for c in range(combo[-1] + 1, len(candidates))]
  return [tuple(candidates[c] for c in combo) for combo in found]

"""Object-size questions: an object's height, width or length (mm) shown by a minimal covering image set.

Only objects whose label is unique in the scene are asked about (a question naming "the chair" in a
room with two chairs has no single answer).
"""

from __future__ import annotations

import collections

import numpy as np

from jaxlab.spatial import coverage, geometry
from jaxlab.spatial.plans import EngineConfig, StaticPlan
from jaxlab.spatial.sample import QASample, Skip, make_sample


def object_size(plan: StaticPlan, subtask: str, rng: np.random.Generator, item_id: str,
                config: EngineConfig) -> QASample:
  dimension = subtask.removeprefix("object_size_")
  scene = plan.scene
  counts = collections.Counter(o.label for o in scene.objects)
  unique = [o for o in scene.objects if counts[o.label] == 1]
  if not unique:
    raise Skip("no object with a unique label")
  for k in rng.permutation(len(unique)):
    obj = unique[int(k)]
    sets = coverage.covering_sets(scene, obj.id, dimension, max_k=config.max_cover_images,
                                  depth_tolerance=config.depth_tolerance)
    if sets:
      break
  else:
    raise Skip("no image set covers any object's extent")
  chosen = sets[int(rng.integers(len(sets)))]
  order = [int(f) for f in rng.permutation(list(chosen))]
  value = geometry.to_millimetres(getattr(obj, dimension))
  meta = {"scene": scene.name, "frames": [scene.frames[f].name for f in order], "object_id": obj.id}
  return make_sample(item_id, subtask, [scene.frames[f].rgb_hw3 for f in order], rng, value, object=obj.label,
                     meta=meta)

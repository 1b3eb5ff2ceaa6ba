"""The MultiSPA engine: one call turns a planned scene and a subtask name into a question, or a counted skip.

  plan = plan_scene(scene, config, seed)           # StaticScene or TrackScene
  sample = build_question(plan, subtask, rng, item_id, config)   # QASample, or raises Skip

`scene_subtasks(plan)` lists what a plan can ask: the 18 static subtasks for a `StaticScene`, the four
object-movement kinds under the track source's name for a `TrackScene`.
"""

from __future__ import annotations

import numpy as np

from jaxlab.spatial import subtasks as names
from jaxlab.spatial.camera_questions import camera_movement
from jaxlab.spatial.correspondence_questions import correspondence
from jaxlab.spatial.depth_questions import depth_compare, depth_value
from jaxlab.spatial.movement_questions import object_movement
from jaxlab.spatial.plans import EngineConfig, StaticPlan, TrackPlan, plan_static, plan_tracks
from jaxlab.spatial.sample import QASample
from jaxlab.spatial.scene import StaticScene, TrackScene
from jaxlab.spatial.size_questions import object_size

_STATIC_BUILDERS = {
    **{s: depth_value for s in ("depth_value_dot", "depth_value_coord")},
    **{s: depth_compare for s in ("depth_compare_dot", "depth_compare_coord")},
    **{s: correspondence for s in names.CORRESPONDENCE},
    **{s: camera_movement for s in names.CAMERA},
    **{s: object_size for s in names.OBJECT_SIZE},
}


def plan_scene(scene: StaticScene | TrackScene, config: EngineConfig, seed: int) -> StaticPlan | TrackPlan:
  if isinstance(scene, StaticScene):
    return plan_static(scene, config, seed)
  if isinstance(scene, TrackScene):
    return plan_tracks(scene, config, seed)
  raise TypeError(f"a scene is a StaticScene or a TrackScene, got {type(scene).__name__}")


def scene_subtasks(plan: StaticPlan | TrackPlan) -> tuple[str, ...]:
  if isinstance(plan, StaticPlan):
    return names.STATIC_SUBTASKS
  return tuple(names.object_movement_subtask(plan.scene.source, k) for k in names.OBJECT_MOVEMENT_KINDS)


def build_question(plan: StaticPlan | TrackPlan, subtask: str, rng: np.random.Generator, item_id: str,
                   config: EngineConfig) -> QASample:
  """One question of `subtask` from `plan`; raises `Skip` with the reason when this draw has none."""
  if isinstance(plan, TrackPlan):
    prefix = f"object_movement_{plan.scene.source}_"
    if not subtask.startswith(prefix) or subtask.removeprefix(prefix) not in names.OBJECT_MOVEMENT_KINDS:
      raise ValueError(f"a track scene of source {plan.scene.source!r} asks {scene_subtasks(plan)}, not {subtask!r}")
    return object_movement(plan, subtask.removeprefix(prefix), rng, item_id, config)
  if subtask not in _STATIC_BUILDERS:
    raise ValueError(f"a static scene asks {names.STATIC_SUBTASKS}, not {subtask!r}")
  return _STATIC_BUILDERS[subtask](plan, subtask, rng, item_id, config)

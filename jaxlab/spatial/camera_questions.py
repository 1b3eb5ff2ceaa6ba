"""Camera-movement questions on a frame pair (nine subtasks), from the pair's relative pose.

With probability 0.5 the pair's order is swapped (the motion recomputed from frame 2 to frame 1).
Direction questions are asked only when the component is at least `min_translation_m` (translation)
or `min_angle_deg` (rotation); numeric ones only when the value is nonzero after rounding. Other
draws raise `Skip`, so no question carries a label the images cannot support.
"""

from __future__ import annotations

import numpy as np

from jaxlab.spatial import geometry
from jaxlab.spatial.plans import EngineConfig, StaticPlan
from jaxlab.spatial.sample import QASample, Skip, make_sample

_AXIS = {"camera_left_right": 0, "camera_up_down": 1, "camera_forward_backward": 2}


def camera_movement(plan: StaticPlan, subtask: str, rng: np.random.Generator, item_id: str,
                    config: EngineConfig) -> QASample:
  if not plan.pairs:
    raise Skip("no frame pair in the overlap range")
  i, j, overlap = plan.pairs[int(rng.integers(len(plan.pairs)))]
  if rng.random() < 0.5:
    i, j = j, i
  f1, f2 = plan.scene.frames[i], plan.scene.frames[j]
  motion = geometry.camera_motion(f1.cam_to_world_44, f2.cam_to_world_44)
  labels = geometry.direction_labels(motion)
  if subtask in _AXIS:
    if abs(motion.displacement_m_3[_AXIS[subtask]]) < config.min_translation_m:
      raise Skip("translation along the asked axis too small")
    value = labels[subtask]
  elif subtask == "camera_yaw_direction":
    if abs(motion.yaw_deg) < config.min_angle_deg:
      raise Skip("yaw too small")
    value = labels[subtask]
  elif subtask == "camera_pitch_direction":
    if abs(motion.pitch_deg) < config.min_angle_deg:
      raise Skip("pitch too small")
    value = labels[subtask]
  elif subtask in ("camera_yaw_degrees", "camera_pitch_degrees"):
    # The size of the turn (the direction has its own subtasks), as the released engine asks it.
    value = abs(int(round(motion.yaw_deg if subtask == "camera_yaw_degrees" else motion.pitch_deg)))
    if value == 0:
      raise Skip("zero angle")
  elif subtask == "camera_distance":
    value = geometry.to_millimetres(motion.distance_m)
    if value == 0:
      raise Skip("zero distance")
  elif subtask == "camera_vector":
    value = tuple(geometry.to_millimetres(c) for c in motion.displacement_m_3)
    if not any(value):
      raise Skip("zero displacement")
  else:
    raise ValueError(f"not a camera subtask: {subtask!r}")
  meta = {"scene": plan.scene.name, "frames": [f1.name, f2.name], "overlap": round(float(overlap), 4),
          "displacement_mm": [geometry.to_millimetres(c) for c in motion.displacement_m_3],
          "yaw_deg": round(float(motion.yaw_deg), 2), "pitch_deg": round(float(motion.pitch_deg), 2)}
  return make_sample(item_id, subtask, [f1.rgb_hw3, f2.rgb_hw3], rng, value, meta=meta)

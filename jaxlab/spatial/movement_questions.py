"""Object-movement questions on a track scene: how far (mm) a marked point moved between two frames,
or its displacement vector (mm) in the first camera's frame (x right, y down, z forward).

Draws come from the plan (balanced over displacement bins); a point that moved less than
`min_movement_m` is static and skipped. The point is marked in image 1 by a dot or by coordinates.
"""

from __future__ import annotations

import numpy as np

from jaxlab.spatial import draw, geometry
from jaxlab.spatial.pixels import inside_margin
from jaxlab.spatial.plans import EngineConfig, TrackPlan
from jaxlab.spatial.sample import QASample, Skip, make_sample
from jaxlab.spatial.subtasks import object_movement_subtask


def object_movement(plan: TrackPlan, kind: str, rng: np.random.Generator, item_id: str,
                    config: EngineConfig) -> QASample:
  """kind: "distance_dot", "distance_coord", "vector_dot" or "vector_coord"."""
  scene = plan.scene
  if not plan.draws:
    raise Skip("no moving rigid body with a point seen twice")
  point, t1, t2, shift = plan.draws[int(rng.integers(len(plan.draws)))]
  if shift < config.min_movement_m:
    raise Skip("the point did not move")
  p1, p2 = scene.points_world_tn3[t1, point], scene.points_world_tn3[t2, point]
  (uv,), _ = geometry.project(p1[None], scene.intrinsics_33, scene.cam_to_world_t44[t1])
  if not np.all(np.isfinite(uv)) or not inside_margin(uv[0], uv[1], scene.width, scene.height):
    raise Skip("the point lies at the border of image 1")
  rotation_world_from_cam1 = scene.cam_to_world_t44[t1][:3, :3]
  vector_m = rotation_world_from_cam1.T @ (p2 - p1)
  if kind.startswith("distance"):
    value = geometry.to_millimetres(float(np.linalg.norm(vector_m)))
  else:
    value = tuple(geometry.to_millimetres(c) for c in vector_m)
  image1 = scene.rgb_thw3[t1]
  color = draw.distinct_colors(1, rng)[0]
  if kind.endswith("dot"):
    image1 = draw.draw_dot(image1, float(uv[0]), float(uv[1]), color, radius=config.dot_radius)
  x, y = geometry.normalized_coords(float(uv[0]), float(uv[1]), scene.width, scene.height)
  subtask = object_movement_subtask(scene.source, kind)
  meta = {"scene": scene.name, "frames": [int(t1), int(t2)], "point": int(point), "uv": [float(uv[0]), float(uv[1])]}
  return make_sample(item_id, subtask, [image1, scene.rgb_thw3[t2]], rng, value,
                     template_key=f"object_movement_{kind}", color=draw.color_name(color), x=x, y=y, meta=meta)

"""Depth questions on one frame: the depth of a marked point (dot or coordinates), and which of two is closer."""

from __future__ import annotations

import numpy as np

from jaxlab.spatial import draw, geometry
from jaxlab.spatial.pixels import pick_pixel
from jaxlab.spatial.plans import EngineConfig, StaticPlan
from jaxlab.spatial.sample import QASample, Skip, make_sample


def depth_value(plan: StaticPlan, subtask: str, rng: np.random.Generator, item_id: str,
                config: EngineConfig) -> QASample:
  """depth_value_dot / depth_value_coord: the point's depth (camera z) in millimetres."""
  f = int(rng.integers(len(plan.scene.frames)))
  frame = plan.scene.frames[f]
  u, v, depth = pick_pixel(frame, rng)
  x, y = geometry.normalized_coords(u, v, frame.width, frame.height)
  image = frame.rgb_hw3
  color = draw.distinct_colors(1, rng)[0]
  if subtask == "depth_value_dot":
    image = draw.draw_dot(image, u, v, color, radius=config.dot_radius)
  value = geometry.to_millimetres(depth)
  if value <= 0:
    raise Skip("zero depth")
  return make_sample(item_id, subtask, [image], rng, value, color=draw.color_name(color), x=x, y=y,
                     meta={"scene": plan.scene.name, "frames": [frame.name], "uv": [u, v]})


def depth_compare(plan: StaticPlan, subtask: str, rng: np.random.Generator, item_id: str,
                  config: EngineConfig) -> QASample:
  """depth_compare_dot / depth_compare_coord: which of two points is closer to the camera.

  The dot variant labels the points A and B and answers the letter; the coordinate variant answers
  the closer point's coordinates. Pairs whose depths differ by less than `min_depth_gap` (relative)
  are redrawn, then skipped.
  """
  frame = plan.scene.frames[int(rng.integers(len(plan.scene.frames)))]
  u1, v1, d1 = pick_pixel(frame, rng)
  for _ in range(20):
    u2, v2, d2 = pick_pixel(frame, rng, avoid_uv=[(u1, v1)], min_distance=0.15 * frame.width)
    if abs(d1 - d2) >= config.min_depth_gap * min(d1, d2):
      break
  else:
    raise Skip("no two points with clearly different depths")
  (x1, y1), (x2, y2) = (geometry.normalized_coords(u, v, frame.width, frame.height) for u, v in ((u1, v1), (u2, v2)))
  closer_first = d1 < d2
  meta = {"scene": plan.scene.name, "frames": [frame.name], "depths_mm": [geometry.to_millimetres(d1),
                                                                         geometry.to_millimetres(d2)]}
  if subtask == "depth_compare_dot":
    c1, c2 = draw.distinct_colors(2, rng)
    image = draw.draw_dot(frame.rgb_hw3, u1, v1, c1, radius=config.dot_radius)
    image = draw.draw_dot(image, u2, v2, c2, radius=config.dot_radius)
    image = draw.draw_label(image, u1, v1, "A", c1)
    image = draw.draw_label(image, u2, v2, "B", c2)
    return make_sample(item_id, subtask, [image], rng, "A" if closer_first else "B", meta=meta)
  value = (x1, y1) if closer_first else (x2, y2)
  return make_sample(item_id, subtask, [frame.rgb_hw3], rng, value, x1=x1, y1=y1, x2=x2, y2=y2, meta=meta)

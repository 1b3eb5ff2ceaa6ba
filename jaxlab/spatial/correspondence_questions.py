"""Visual correspondence across a frame pair: a point marked in image 1, found in image 2.

The point is a scene surface point seen by both frames (depth test in each), away from both borders.
`correspondence_mcq`: a dot in image 1, four lettered dots in image 2 (the true one and three random
distractors at least 12 % of the width from it and each other); the answer is the letter.
`correspondence_coord`: coordinates in image 1 (0-1000), answered by coordinates in image 2.
"""

from __future__ import annotations

import numpy as np

from jaxlab.spatial import draw, geometry
from jaxlab.spatial.pixels import inside_margin, random_pixel
from jaxlab.spatial.plans import EngineConfig, StaticPlan
from jaxlab.spatial.sample import QASample, Skip, make_sample

LETTERS = ("A", "B", "C", "D")


def shared_point(plan: StaticPlan, rng: np.random.Generator) -> tuple[int, int, tuple[float, float], tuple[float, float]]:
  """(frame 1, frame 2, uv in 1, uv in 2) of a point both frames of a random kept pair see."""
  if not plan.pairs:
    raise Skip("no frame pair in the overlap range")
  i, j, _ = plan.pairs[int(rng.integers(len(plan.pairs)))]
  if rng.random() < 0.5:
    i, j = j, i
  frames = plan.scene.frames
  both = np.flatnonzero(plan.visible_fn[i] & plan.visible_fn[j])
  if len(both) == 0:
    raise Skip("the pair shares no point")
  points = plan.scene.points_world_n3[both]
  uv_i, _ = geometry.project(points, frames[i].intrinsics_33, frames[i].cam_to_world_44)
  uv_j, _ = geometry.project(points, frames[j].intrinsics_33, frames[j].cam_to_world_44)
  ok = np.array([inside_margin(a, b, frames[i].width, frames[i].height) and
                 inside_margin(c, d, frames[j].width, frames[j].height)
                 for (a, b), (c, d) in zip(uv_i, uv_j)], bool)
  if not ok.any():
    raise Skip("shared points all lie at the border")
  k = int(rng.choice(np.flatnonzero(ok)))
  return i, j, (float(uv_i[k, 0]), float(uv_i[k, 1])), (float(uv_j[k, 0]), float(uv_j[k, 1]))


def correspondence(plan: StaticPlan, subtask: str, rng: np.random.Generator, item_id: str,
                   config: EngineConfig) -> QASample:
  i, j, (u1, v1), (u2, v2) = shared_point(plan, rng)
  f1, f2 = plan.scene.frames[i], plan.scene.frames[j]
  meta = {"scene": plan.scene.name, "frames": [f1.name, f2.name], "uv": [[u1, v1], [u2, v2]]}
  if subtask == "correspondence_coord":
    x1, y1 = geometry.normalized_coords(u1, v1, f1.width, f1.height)
    value = geometry.normalized_coords(u2, v2, f2.width, f2.height)
    return make_sample(item_id, subtask, [f1.rgb_hw3, f2.rgb_hw3], rng, value, x=x1, y=y1, meta=meta)
  color = draw.distinct_colors(1, rng)[0]
  image1 = draw.draw_dot(f1.rgb_hw3, u1, v1, color, radius=config.dot_radius)
  points = [(u2, v2)]
  for _ in range(3):
    points.append(random_pixel(f2.width, f2.height, rng, avoid_uv=points, min_distance=0.12 * f2.width))
  order = rng.permutation(4)  # order[k]: which point gets letter k; point 0 is the true one.
  image2 = f2.rgb_hw3
  for letter, k in zip(LETTERS, order):
    u, v = points[int(k)]
    image2 = draw.draw_dot(image2, u, v, color, radius=config.dot_radius)
    image2 = draw.draw_label(image2, u, v, letter, color)
  answer = LETTERS[int(np.flatnonzero(order == 0)[0])]
  return make_sample(item_id, subtask, [image1, image2], rng, answer, color=draw.color_name(color), meta=meta)

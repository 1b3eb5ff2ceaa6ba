"""Synthetic multi-person clips: walking figures that cross and occlude each other under a moving camera.

`generate_clip(seed)` = `render_plan(plan_clip(seed))`: a `VideoClip` with RGB, depth, normals,
identity masks, OpenPose-18 poses, intrinsics and cameras, everything drawn from
`numpy.random.default_rng([seed, attempt])`, so a seed always gives the same arrays.

Scene. World y up, ground y = 0, a textured back wall behind everyone (`raycast.Backdrop`). The
camera (40 degrees vertical field of view) looks at a point 0.8-1 m above the ground 3.4-4.5 m
away, 6-16 degrees from above, and moves smoothly (constant rates, drawn per seed) by one of
`CAMERA_MOTIONS`: orbit (14-26 deg/s around the target), pan (8-14 deg/s turn in place), dolly
(0.6-1.1 m/s along the view), orbit_dolly (both, a little slower) or truck (0.5-1 m/s sideways with
the target). Frame f is at time f / fps.

People. P figures (P drawn from `num_people`), person p with identity p + 1, each with its
identity's look (`figures.Figure`): shirt hues spread evenly around the colour wheel (1 / N apart
for N identities, saturated), a trousers colour from a palette of 8 distinct ones (no two of the
first 8 identities share one), a shirt pattern cycling through plain / stripes / checks, a skin
tone and a hair colour. Persons are paired up (one left alone when P is odd); a pair crosses: at a
time drawn in the middle 30-70 % of the clip both stand on one line of sight of the camera of the
frame nearest that time, 0.5-1 m apart in depth, walking sideways in opposite directions (each
within 25 degrees of perpendicular to the line of sight) at 0.9-1.5 m/s, so the nearer one
occludes the farther and their left-right order in the image flips. A person left alone walks at
0.6-1.4 m/s in any direction through a point in view. Every path turns by up to 50 degrees some
time after that point.

A draw is redone (next attempt) when a person would come within 1.3 m of the camera or the
camera would see past the wall and the ground (which raycast refuses).

Poses: the 18 joints of each person projected with the frame's camera; confidence 1 for joints in
front of the camera and inside the image, else 0 with (x, y) = (0, 0). Occlusion does not lower the
confidence. The reference image is frame 0's RGB.
"""

from __future__ import annotations

import colorsys
import dataclasses
import math

import numpy as np

from jaxlab.video.clip import NUM_KEYPOINTS, VideoClip
from jaxlab.video.figures import PATTERNS, Figure, ground_state
from jaxlab.video.raycast import Backdrop, render_frame, scene_at

CAMERA_MOTIONS = ("orbit", "pan", "dolly", "orbit_dolly", "truck")
VERTICAL_FOV_DEG = 40.0
MIN_CAMERA_DISTANCE = 1.3  # metres between the camera and any person's ground point
MAX_ATTEMPTS = 50
_TROUSERS = ((0.12, 0.16, 0.38), (0.08, 0.08, 0.09), (0.62, 0.55, 0.38), (0.45, 0.45, 0.48), (0.38, 0.24, 0.14),
             (0.33, 0.36, 0.18), (0.42, 0.10, 0.14), (0.40, 0.52, 0.70))
_SKIN = ((0.96, 0.80, 0.69), (0.87, 0.68, 0.53), (0.76, 0.57, 0.42), (0.55, 0.38, 0.26), (0.36, 0.24, 0.16))
_HAIR = ((0.06, 0.05, 0.05), (0.30, 0.18, 0.09), (0.80, 0.66, 0.38), (0.55, 0.55, 0.55), (0.55, 0.22, 0.08))


@dataclasses.dataclass(frozen=True, eq=False)
class ClipPlan:
  """Everything a clip is rendered from: figures (person p has identity p + 1), backdrop, per-frame
  intrinsics [F, 3, 3] and cameras [F, 4, 4] (OpenCV axes) and times [F] (seconds)."""

  figures: tuple[Figure, ...]
  backdrop: Backdrop
  intrinsics_f33: np.ndarray
  cam_to_world_f44: np.ndarray
  times_f: np.ndarray
  height: int
  width: int
  num_identities: int
  camera_motion: str
  name: str


def _hsv(hue: float, sat: float, val: float) -> tuple[float, float, float]:
  return colorsys.hsv_to_rgb(hue % 1.0, min(max(sat, 0.0), 1.0), min(max(val, 0.0), 1.0))


def _yaw(vec_2: np.ndarray, angle: float) -> np.ndarray:
  """An xz vector turned by `angle` radians (positive: from +z towards +x)."""
  c, s = math.cos(angle), math.sin(angle)
  return np.array([c * vec_2[0] + s * vec_2[1], -s * vec_2[0] + c * vec_2[1]])


def _look_at(position_3: np.ndarray, forward_3: np.ndarray) -> np.ndarray:
  """Camera-to-world [4, 4], OpenCV axes, looking along `forward_3` with the world's y up."""
  fwd = forward_3 / np.linalg.norm(forward_3)
  right = np.cross(fwd, [0.0, 1.0, 0.0])
  right /= np.linalg.norm(right)
  down = np.cross(fwd, right)
  pose = np.eye(4)
  pose[:3, :3] = np.stack([right, down, fwd], axis=1)
  pose[:3, 3] = position_3
  return pose


def _draw_camera(rng: np.random.Generator, times_f: np.ndarray):
  """(cam_to_world [F, 4, 4], motion kind, target at t = 0) of a smooth move drawn from `rng`."""
  motion = str(rng.choice(CAMERA_MOTIONS))
  target0 = np.array([rng.uniform(-0.3, 0.3), rng.uniform(0.8, 1.0), rng.uniform(0.0, 0.6)])
  dist0, az0, el = rng.uniform(3.4, 4.5), math.radians(rng.uniform(-20, 20)), math.radians(rng.uniform(6, 16))
  sign = lambda: float(rng.choice((-1.0, 1.0)))
  orbit = pan = dolly = truck = 0.0
  if motion == "orbit":
    orbit = sign() * math.radians(rng.uniform(14, 26))
  elif motion == "pan":
    pan = sign() * math.radians(rng.uniform(8, 14))
  elif motion == "dolly":
    dolly = sign() * rng.uniform(0.6, 1.1)
  elif motion == "orbit_dolly":
    orbit, dolly = sign() * math.radians(rng.uniform(10, 18)), sign() * rng.uniform(0.4, 0.8)
  else:
    truck = sign() * rng.uniform(0.5, 1.0)
  poses = []
  for t in times_f:
    az, dist = az0 + orbit * t, dist0 - dolly * t
    offset_3 = dist * np.array([math.sin(az) * math.cos(el), math.sin(el), -math.cos(az) * math.cos(el)])
    lateral_3 = np.array([math.cos(az0), 0.0, math.sin(az0)])  # the camera's right at t = 0
    target = target0 + truck * t * lateral_3
    if pan:
      position = target0 + dist0 * np.array([math.sin(az0) * math.cos(el), math.sin(el), -math.cos(az0) * math.cos(el)])
      fwd_2 = _yaw(np.array([-math.sin(az0), math.cos(az0)]), pan * t)
      forward = np.array([fwd_2[0] * math.cos(el), -math.sin(el), fwd_2[1] * math.cos(el)])
    else:
      position, forward = target + offset_3, -offset_3
    poses.append(_look_at(position, forward))
  return np.stack(poses), motion


def _draw_looks(rng: np.random.Generator, num_identities: int):
  """Per identity 1..N: (shirt, trousers, skin, hair, pattern), shirts 1/N of the hue circle apart."""
  hue0 = rng.uniform()
  trousers = rng.permutation(len(_TROUSERS))
  pattern0 = int(rng.integers(len(PATTERNS)))
  looks = []
  for k in range(num_identities):
    shirt = _hsv(hue0 + k / num_identities, rng.uniform(0.7, 0.9), rng.uniform(0.75, 0.95))
    looks.append((shirt, _TROUSERS[trousers[k % len(_TROUSERS)]], _SKIN[rng.integers(len(_SKIN))],
                  _HAIR[rng.integers(len(_HAIR))], PATTERNS[(pattern0 + k) % len(PATTERNS)]))
  return looks


def _path(rng: np.random.Generator, point_2: np.ndarray, t_point: float, dir_2: np.ndarray, speed: float,
          duration: float) -> np.ndarray:
  """Waypoints [4, 2]: reach `point_2` at t_point heading along dir_2, go on straight a little, then turn."""
  start = point_2 - dir_2 * speed * t_point
  corner = point_2 + dir_2 * speed * max(duration, 0.5) * rng.uniform(0.1, 0.5)
  end = corner + _yaw(dir_2, math.radians(rng.uniform(-50, 50))) * (speed * max(duration, 0.5) + 1.0)
  if t_point <= 0:
    return np.stack([point_2, corner, end])
  return np.stack([start, point_2, corner, end])


def _draw_figures(rng: np.random.Generator, num_people: int, num_identities: int, cam_f44: np.ndarray,
                  times_f: np.ndarray, fps: float) -> list[Figure]:
  duration = float(times_f[-1])
  half_fov = math.radians(VERTICAL_FOV_DEG) / 2
  looks = _draw_looks(rng, num_identities)
  order = [int(p) for p in rng.permutation(num_people)]
  placed = {}  # person -> (point xz, time there, direction xz, speed)

  def view_at(t):
    """(camera ground point xz, horizontal viewing direction xz) of the frame nearest to time t."""
    f = min(round(t * fps), len(times_f) - 1)
    pose = cam_f44[f]
    fwd_2 = pose[[0, 2], 2] / np.linalg.norm(pose[[0, 2], 2])
    return pose[[0, 2], 3], fwd_2

  for i in range(0, num_people - 1, 2):
    t_cross = rng.uniform(0.3, 0.7) * duration
    cam_2, fwd_2 = view_at(t_cross)
    ray_2 = _yaw(fwd_2, rng.uniform(-0.3, 0.3) * half_fov)
    across_2 = np.array([-ray_2[1], ray_2[0]])
    r_mid, gap = rng.uniform(2.9, 4.6), rng.uniform(0.5, 1.0)
    side = float(rng.choice((-1.0, 1.0)))
    for person, r, s in ((order[i], r_mid - gap / 2, side), (order[i + 1], r_mid + gap / 2, -side)):
      direction = _yaw(s * across_2, math.radians(rng.uniform(-25, 25)))
      placed[person] = (cam_2 + r * ray_2, t_cross, direction, rng.uniform(0.9, 1.5))
  if num_people % 2:
    t_pass = rng.uniform(0.0, 1.0) * duration
    cam_2, fwd_2 = view_at(t_pass)
    ray_2 = _yaw(fwd_2, rng.uniform(-0.6, 0.6) * half_fov)
    angle = rng.uniform(0, 2 * math.pi)
    placed[order[-1]] = (cam_2 + rng.uniform(2.8, 5.0) * ray_2, t_pass, np.array([math.sin(angle), math.cos(angle)]),
                         rng.uniform(0.6, 1.4))
  figures = []
  for person in range(num_people):
    point_2, t_point, dir_2, speed = placed[person]
    shirt, trousers, skin, hair, pattern = looks[person]
    figures.append(Figure(
        identity=person + 1, shirt_rgb=shirt, trousers_rgb=trousers, skin_rgb=skin, hair_rgb=hair, pattern=pattern,
        height=rng.uniform(1.55, 1.9), waypoints_k2=_path(rng, point_2, t_point, dir_2, speed, duration),
        speed=speed, phase=rng.uniform(0, 2 * math.pi)))
  return figures


def _draw_backdrop(rng: np.random.Generator, wall_z: float) -> Backdrop:
  """Muted (low saturation) checkers, so the figures' colours stand out."""
  hue, val = rng.uniform(), rng.uniform(0.45, 0.6)
  sat = rng.uniform(0.08, 0.22)
  ground_a, ground_b = _hsv(hue, sat, val), _hsv(hue + 0.05, sat, val - rng.uniform(0.12, 0.2))
  hue, val = rng.uniform(), rng.uniform(0.65, 0.85)
  sat = rng.uniform(0.05, 0.2)
  wall_a, wall_b = _hsv(hue, sat, val), _hsv(hue - 0.04, sat, val * rng.uniform(0.7, 0.82))
  return Backdrop(ground_a, ground_b, rng.uniform(0.5, 0.9), wall_z, wall_a, wall_b, rng.uniform(0.4, 0.8))


def _intrinsics(height: int, width: int) -> np.ndarray:
  focal = (height / 2) / math.tan(math.radians(VERTICAL_FOV_DEG) / 2)
  return np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])


def _camera_sees_past(k_33: np.ndarray, pose_44: np.ndarray, height: int, width: int) -> bool:
  """A ray going away from the wall: the world z of a ray direction is linear in the pixel, so the
  image corners bound it."""
  corners_3n = np.array([[0.0, width, 0.0, width], [0.0, 0.0, height, height], [1.0, 1.0, 1.0, 1.0]])
  dirs_3n = pose_44[:3, :3] @ np.linalg.solve(k_33, corners_3n)
  return bool((dirs_3n[2] < 0.05).any())


def plan_clip(seed: int, *, num_frames: int = 8, height: int = 32, width: int = 32,
              num_people: int | tuple[int, int] = (2, 5), num_identities: int = 5, fps: float = 8) -> ClipPlan:
  """The scene, people and cameras of clip `seed` (module docstring); `num_people` an int or an
  inclusive range (low, high)."""
  if int(num_frames) < 1 or int(height) < 4 or int(width) < 4:
    raise ValueError(f"need num_frames >= 1 and an image of at least 4x4, got {num_frames} frames of {width}x{height}")
  if not fps > 0:
    raise ValueError(f"fps must be > 0, got {fps}")
  low, high = (num_people, num_people) if isinstance(num_people, (int, np.integer)) else tuple(num_people)
  if not 1 <= int(low) <= int(high) <= int(num_identities):
    raise ValueError(f"num_people must lie in 1..num_identities = {num_identities} with low <= high, "
                     f"got {num_people!r}")
  times_f = np.arange(int(num_frames)) / float(fps)
  k_33 = _intrinsics(int(height), int(width))
  for attempt in range(MAX_ATTEMPTS):
    rng = np.random.default_rng([int(seed), attempt])
    count = int(rng.integers(int(low), int(high) + 1))
    cam_f44, motion = _draw_camera(rng, times_f)
    figures = _draw_figures(rng, count, int(num_identities), cam_f44, times_f, float(fps))
    ground_fp2 = np.array([[ground_state(fig, t)[0] for fig in figures] for t in times_f])
    near = np.linalg.norm(ground_fp2 - cam_f44[:, None, [0, 2], 3], axis=-1).min() < MIN_CAMERA_DISTANCE
    if near or any(_camera_sees_past(k_33, pose, int(height), int(width)) for pose in cam_f44):
      continue
    wall_z = ground_fp2[..., 1].max() + rng.uniform(0.8, 2.0)
    return ClipPlan(
        figures=tuple(figures), backdrop=_draw_backdrop(rng, wall_z),
        intrinsics_f33=np.repeat(k_33[None], len(times_f), axis=0), cam_to_world_f44=cam_f44, times_f=times_f,
        height=int(height), width=int(width), num_identities=int(num_identities), camera_motion=motion,
        name=f"synthetic-{seed}")
  raise ValueError(f"seed {seed}: no valid scene in {MAX_ATTEMPTS} draws (image {width}x{height})")


def _project(points_n3: np.ndarray, k_33: np.ndarray, pose_44: np.ndarray, height: int, width: int) -> np.ndarray:
  """(x, y, confidence) [N, 3]: confidence 1 in front of the camera and inside the image, else all 0."""
  cam_n3 = (np.asarray(points_n3, np.float64) - pose_44[:3, 3]) @ pose_44[:3, :3]
  z_n = cam_n3[:, 2]
  front_n = z_n > 1e-3
  pix_n3 = cam_n3 @ k_33.T / np.where(front_n, z_n, 1.0)[:, None]
  x_n, y_n = pix_n3[:, 0], pix_n3[:, 1]
  seen_n = front_n & (x_n >= 0) & (x_n < width) & (y_n >= 0) & (y_n < height)
  return np.where(seen_n[:, None], np.stack([x_n, y_n, np.ones_like(x_n)], axis=1), 0.0)


def render_plan(plan: ClipPlan) -> VideoClip:
  """The clip a plan describes (module docstring)."""
  h, w, f = plan.height, plan.width, len(plan.times_f)
  rgb, depth, normal, masks = (np.zeros((f, h, w, 3), np.float32), np.zeros((f, h, w), np.float32),
                               np.zeros((f, h, w, 3), np.float32), np.zeros((f, h, w), np.int32))
  poses = np.zeros((f, len(plan.figures), NUM_KEYPOINTS, 3), np.float32)
  for i, t in enumerate(plan.times_f):
    scene = scene_at(plan.figures, t, plan.backdrop)
    out = render_frame(scene, plan.intrinsics_f33[i], plan.cam_to_world_f44[i], h, w)
    rgb[i], depth[i], normal[i], masks[i] = out["rgb_hw3"], out["depth_hw"], out["normal_hw3"], out["ids_hw"]
    joints = scene.joints_pk3.reshape(-1, 3)
    poses[i] = _project(joints, plan.intrinsics_f33[i], plan.cam_to_world_f44[i], h, w).reshape(poses[i].shape)
  return VideoClip(rgb_fhwc=rgb, masks_fhw=masks, poses_fpk3=poses, intrinsics_f33=plan.intrinsics_f33,
                   cam_to_world_f44=plan.cam_to_world_f44, reference_hwc=rgb[0], num_identities=plan.num_identities,
                   depth_fhw=depth, normal_fhwc=normal, name=plan.name)


def generate_clip(seed: int, *, num_frames: int = 8, height: int = 32, width: int = 32,
                  num_people: int | tuple[int, int] = (2, 5), num_identities: int = 5, fps: float = 8) -> VideoClip:
  """A synthetic clip (module docstring); the same arguments always give the same arrays."""
  return render_plan(plan_clip(seed, num_frames=num_frames, height=height, width=width, num_people=num_people,
                               num_identities=num_identities, fps=fps))

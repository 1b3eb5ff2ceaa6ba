"""Articulated walking figures: OpenPose-18 joints and textured capsule bodies at any time t.

World axes: y up, the ground at y = 0, metres and seconds. A `Figure` walks at constant speed along a
ground path (a polyline of xz waypoints, starting at the first one at t = 0, standing at the last one
once it gets there). Its heading is the path's direction smoothed over `HEADING_WINDOW` metres, so a
figure turns gradually at a corner. The gait is a function of the distance walked (one full cycle of
two steps per `STRIDE_PER_HEIGHT * height` metres): the legs swing about the hips, the knee of the
leg in swing bends, the arms swing against the legs, and the body bobs twice per cycle.

The body is made of capsules (segment endpoints a, b and a radius) plus spheres (a == b) for the head
and the hair, each tagged with a part kind from `PART_KINDS` that picks its colour: shirt (torso,
upper arms), trousers (pelvis, thighs, shins), skin (neck, forearms, head), hair and shoes (feet).
Shirt parts carry the figure's `pattern` (`PATTERNS`): stripes across the part's axis, checks (axis
bands times turns around the axis) or plain.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from jaxlab.video.clip import KEYPOINT_NAMES

PART_KINDS = ("skin", "hair", "shirt", "trousers", "shoes")
PATTERNS = ("plain", "stripes", "checks")
STRIDE_PER_HEIGHT = 0.8  # metres walked per gait cycle, over the figure's height
HEADING_WINDOW = 0.35  # metres before and after the current point whose chord gives the heading
_LEG_SWING = 0.42  # radians, hip flexion amplitude
_KNEE_BEND = 0.7  # radians, knee flexion at the middle of the swing
_ARM_SWING = 0.25  # radians
_ELBOW_BEND = 0.3  # radians, forearm ahead of the upper arm
_UP_3 = np.array([0.0, 1.0, 0.0])


def _rgb3(value, what: str) -> tuple[float, float, float]:
  color = np.asarray(value, np.float64)
  if color.shape != (3,) or not np.all(np.isfinite(color)) or color.min() < 0 or color.max() > 1:
    raise ValueError(f"{what} must be 3 values in [0, 1], got {value!r}")
  return tuple(float(c) for c in color)


@dataclasses.dataclass(frozen=True, eq=False)
class Figure:
  """One walking person (module docstring).

  identity: the identity label, 1..N (0 is the background).
  shirt_rgb, trousers_rgb, skin_rgb, hair_rgb: colours in [0, 1]; pattern: one of PATTERNS (on the shirt).
  height: metres, ground to the top of the head.
  waypoints_k2: float [K, 2] (x, z) ground path, K >= 2, consecutive points distinct.
  speed: metres per second along the path; phase: gait phase (radians) at t = 0.
  """

  identity: int
  shirt_rgb: tuple[float, float, float]
  trousers_rgb: tuple[float, float, float]
  skin_rgb: tuple[float, float, float]
  hair_rgb: tuple[float, float, float]
  pattern: str
  height: float
  waypoints_k2: np.ndarray
  speed: float
  phase: float = 0.0

  def __post_init__(self):
    if isinstance(self.identity, bool) or not isinstance(self.identity, (int, np.integer)) or self.identity < 1:
      raise ValueError(f"a figure's identity must be an int >= 1 (0 is the background), got {self.identity!r}")
    where = f"figure {int(self.identity)}"
    object.__setattr__(self, "identity", int(self.identity))
    for field in ("shirt_rgb", "trousers_rgb", "skin_rgb", "hair_rgb"):
      object.__setattr__(self, field, _rgb3(getattr(self, field), f"{where}: {field}"))
    if self.pattern not in PATTERNS:
      raise ValueError(f"{where}: unknown pattern {self.pattern!r}; known: {', '.join(PATTERNS)}")
    if not 0.5 <= self.height <= 2.5:
      raise ValueError(f"{where}: height must lie in [0.5, 2.5] metres, got {self.height}")
    path = np.array(self.waypoints_k2, np.float64)
    if path.ndim != 2 or path.shape[0] < 2 or path.shape[1] != 2 or not np.all(np.isfinite(path)):
      raise ValueError(f"{where}: waypoints must be a finite [K, 2] array of (x, z) with K >= 2, got shape "
                       f"{path.shape}")
    if (np.linalg.norm(np.diff(path, axis=0), axis=1) < 1e-6).any():
      raise ValueError(f"{where}: consecutive waypoints must differ")
    path.setflags(write=False)
    object.__setattr__(self, "waypoints_k2", path)
    if not (math.isfinite(self.speed) and self.speed >= 0):
      raise ValueError(f"{where}: speed must be finite and >= 0 m/s, got {self.speed}")
    object.__setattr__(self, "height", float(self.height))
    object.__setattr__(self, "speed", float(self.speed))
    object.__setattr__(self, "phase", float(self.phase))

  @property
  def path_length(self) -> float:
    return float(np.linalg.norm(np.diff(self.waypoints_k2, axis=0), axis=1).sum())


class Part(NamedTuple):
  """One body part: a capsule from a_3 to b_3 of `radius` (a sphere when a_3 == b_3), coloured by `kind`."""

  kind: str
  a_3: np.ndarray
  b_3: np.ndarray
  radius: float


def _point_on_path(path_k2: np.ndarray, s: float) -> np.ndarray:
  """The xz point at arc length s (clamped to the path)."""
  seg_k = np.linalg.norm(np.diff(path_k2, axis=0), axis=1)
  cum_k = np.concatenate([[0.0], np.cumsum(seg_k)])
  s = min(max(s, 0.0), cum_k[-1])
  i = min(int(np.searchsorted(cum_k, s, side="right")) - 1, len(seg_k) - 1)
  return path_k2[i] + (path_k2[i + 1] - path_k2[i]) * ((s - cum_k[i]) / seg_k[i])


def ground_state(figure: Figure, t: float) -> tuple[np.ndarray, np.ndarray, float]:
  """(ground point xz [2], unit heading xz [2], gait phase) at time t (seconds)."""
  path = figure.waypoints_k2
  s = min(max(figure.speed * float(t), 0.0), figure.path_length)
  point_2 = _point_on_path(path, s)
  chord_2 = _point_on_path(path, s + HEADING_WINDOW) - _point_on_path(path, s - HEADING_WINDOW)
  norm = np.linalg.norm(chord_2)
  heading_2 = chord_2 / norm if norm > 1e-9 else (path[1] - path[0]) / np.linalg.norm(path[1] - path[0])
  gait = figure.phase + 2 * math.pi * s / (STRIDE_PER_HEIGHT * figure.height)
  return point_2, heading_2, gait


def _body(figure: Figure, t: float):
  """Joints [18, 3] in world coordinates plus the extra points the capsules need."""
  h = figure.height
  point_2, heading_2, gait = ground_state(figure, t)
  origin = np.array([point_2[0], 0.0, point_2[1]])
  fwd = np.array([heading_2[0], 0.0, heading_2[1]])
  right = np.cross(fwd, _UP_3)  # facing +z with y up, a person's right is -x
  basis_33 = np.stack([right, _UP_3, fwd])  # rows: local (right, up, forward) axes in world coordinates

  def world(local_n3):
    return origin + np.asarray(local_n3, np.float64) @ basis_33

  def limb_dir(angle: float, side: float = 0.0) -> np.ndarray:
    """Local unit vector pointing down, turned `angle` radians forward and `side` radians outward."""
    return np.array([math.sin(side), -math.cos(angle) * math.cos(side), math.sin(angle) * math.cos(side)])

  bob = 0.012 * h * math.cos(2 * gait)
  swing = _LEG_SWING * math.sin(gait)
  hip_y = 0.52 * h + bob
  thigh, shin, upper_arm, forearm = 0.245 * h, 0.245 * h, 0.17 * h, 0.15 * h
  local = {}
  for side, sign, phase_sign in (("right", 1.0, 1.0), ("left", -1.0, -1.0)):
    leg = phase_sign * swing
    knee_bend = _KNEE_BEND * max(0.0, phase_sign * math.cos(gait))  # the leg swinging forward bends its knee
    hip = np.array([sign * 0.085 * h, hip_y, 0.0])
    knee = hip + thigh * limb_dir(leg)
    ankle = knee + shin * limb_dir(leg - knee_bend)
    toe = ankle + np.array([0.0, -0.35 * max(ankle[1] - 0.02 * h, 0.0), 0.075 * h])
    arm = -phase_sign * _ARM_SWING * math.sin(gait)
    shoulder = np.array([sign * 0.13 * h, 0.80 * h + bob, 0.0])
    elbow = shoulder + upper_arm * limb_dir(arm, 0.08) * np.array([sign, 1.0, 1.0])
    wrist = elbow + forearm * limb_dir(arm + _ELBOW_BEND, 0.05) * np.array([sign, 1.0, 1.0])
    local.update({f"{side}_hip": hip, f"{side}_knee": knee, f"{side}_ankle": ankle, f"{side}_toe": toe,
                  f"{side}_shoulder": shoulder, f"{side}_elbow": elbow, f"{side}_wrist": wrist})
  head = np.array([0.0, 0.915 * h + bob, 0.01 * h])
  r_head = 0.065 * h
  local.update({
      "neck": np.array([0.0, 0.82 * h + bob, 0.0]),
      "head": head,
      "nose": head + np.array([0.0, -0.01 * h, r_head]),
      "right_eye": head + np.array([0.025 * h, 0.012 * h, 0.057 * h]),
      "left_eye": head + np.array([-0.025 * h, 0.012 * h, 0.057 * h]),
      "right_ear": head + np.array([0.063 * h, 0.0, -0.005 * h]),
      "left_ear": head + np.array([-0.063 * h, 0.0, -0.005 * h]),
  })
  names = list(local)
  points = dict(zip(names, world(np.stack([local[n] for n in names]))))
  return points, fwd


_JOINT_ORDER = KEYPOINT_NAMES  # the names used in `_body` are OpenPose-18's


def figure_joints(figure: Figure, t: float) -> np.ndarray:
  """float32 [18, 3]: world positions of the OpenPose-18 keypoints (`clip.KEYPOINT_NAMES` order) at time t."""
  points, _ = _body(figure, t)
  return np.stack([points[name] for name in _JOINT_ORDER]).astype(np.float32)


def figure_capsules(figure: Figure, t: float) -> list[Part]:
  """The body parts at time t (module docstring); heads and hair are spheres (a_3 == b_3)."""
  return figure_pose(figure, t)[1]


def figure_pose(figure: Figure, t: float) -> tuple[np.ndarray, list[Part], np.ndarray]:
  """(joints float32 [18, 3], parts, unit forward [3]) at time t, computed once for all three."""
  p, fwd = _body(figure, t)
  h = figure.height
  up = _UP_3 * h
  # Two torso capsules side by side: a circular one as wide as the shoulders would be far too deep.
  hip_mid = (p["right_hip"] + p["left_hip"]) / 2
  side = (p["right_hip"] - p["left_hip"]) / np.linalg.norm(p["right_hip"] - p["left_hip"])
  torso_top, torso_bottom = p["neck"] - 0.03 * up, hip_mid + 0.04 * up
  parts = [
      Part("shirt", torso_top + 0.05 * h * side, torso_bottom + 0.05 * h * side, 0.065 * h),
      Part("shirt", torso_top - 0.05 * h * side, torso_bottom - 0.05 * h * side, 0.065 * h),
      Part("trousers", p["right_hip"], p["left_hip"], 0.062 * h),
      Part("skin", p["neck"], p["neck"] + 0.06 * up, 0.028 * h),
      Part("skin", p["head"], p["head"], 0.065 * h),
      Part("hair", p["head"] + 0.012 * up - 0.012 * h * fwd, p["head"] + 0.012 * up - 0.012 * h * fwd, 0.062 * h),
  ]
  for s in ("right", "left"):
    parts += [
        Part("shirt", p[f"{s}_shoulder"], p[f"{s}_elbow"], 0.032 * h),
        Part("skin", p[f"{s}_elbow"], p[f"{s}_wrist"], 0.027 * h),
        Part("trousers", p[f"{s}_hip"], p[f"{s}_knee"], 0.05 * h),
        Part("trousers", p[f"{s}_knee"], p[f"{s}_ankle"], 0.04 * h),
        Part("shoes", p[f"{s}_ankle"], p[f"{s}_toe"], 0.024 * h),
    ]
  joints = np.stack([p[name] for name in _JOINT_ORDER]).astype(np.float32)
  return joints, parts, fwd

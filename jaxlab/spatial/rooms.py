"""Procedural rooms: the embedded data source for MultiSPA questions, made from a seed with no download.

`make_room_scene` builds a box-shaped room (4-8 m x 3-6 m x 2.6-3 m) with textured walls, floor and
ceiling and 3-7 labelled furniture boxes standing on the floor along the walls, flies a camera along a
smooth closed curve through the free middle of the room (1.2-1.8 m high, yaw sweeping, gentle pitch,
0.1-0.5 m per frame, so frame pairs range from nearly the same view to disjoint ones), and renders
RGB, depth and instance ids by ray casting (`jaxlab.spatial.raycast`). Surface points for overlaps and
coverage are drawn uniformly by area on the room's faces and the boxes' faces (bottoms skipped).

`make_track_scene` builds a room with a few static boxes and moving ones watched by a camera that
stays or moves slightly: source "room_objects" moves 1-3 boxes rigidly on the floor (translation and
yaw), source "room_figures" moves a figure of 3-5 boxes (legs, torso, head, arms) whose parts follow
different rigid motions. Track points are fixed on the moving boxes (in each box's own frame) plus a
few static points; a point is visible in a frame when the ray from the camera toward it meets no
surface more than 2 cm nearer (camera z).

Everything is drawn from `numpy.random.default_rng` of the seed: the same seed gives identical arrays.
"""

from __future__ import annotations

import colorsys
import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from jaxlab.spatial.raycast import (
  Appearance,
  Box,
  Room,
  cast_rays,
  pixel_rays,
  ray_visible,
  render,
)
from jaxlab.spatial.scene import Frame, SceneError, SceneObject, StaticScene, TrackScene

SOURCES = ("room_objects", "room_figures")

# label: (length along the wall, depth away from it, height) ranges in metres.
_FURNITURE = {
    "table": ((1.0, 1.6), (0.7, 0.9), (0.72, 0.78)),
    "chair": ((0.42, 0.5), (0.42, 0.5), (0.8, 1.0)),
    "cabinet": ((0.6, 1.2), (0.4, 0.6), (0.8, 1.9)),
    "bed": ((1.9, 2.1), (1.2, 1.5), (0.45, 0.6)),
    "sofa": ((1.6, 2.2), (0.8, 0.95), (0.75, 0.9)),
    "desk": ((1.0, 1.5), (0.55, 0.75), (0.72, 0.76)),
    "shelf": ((0.7, 1.2), (0.28, 0.4), (1.4, 2.0)),
    "box": ((0.3, 0.6), (0.3, 0.6), (0.25, 0.5)),
    "lamp": ((0.25, 0.35), (0.25, 0.35), (1.3, 1.7)),
    "nightstand": ((0.4, 0.55), (0.35, 0.45), (0.5, 0.65)),
    "wardrobe": ((0.9, 1.5), (0.55, 0.65), (1.8, 2.2)),
    "dresser": ((0.9, 1.4), (0.45, 0.55), (0.8, 1.0)),
    "armchair": ((0.7, 0.9), (0.7, 0.85), (0.8, 1.0)),
    "tv stand": ((1.2, 1.8), (0.35, 0.45), (0.45, 0.6)),
}
_SHALLOW = tuple(label for label, (_, depth, _) in _FURNITURE.items() if depth[1] <= 0.6)
_GOLDEN = 0.6180339887  # hue step that keeps successive hues far apart
_CAMERA_CLEARANCE = 0.35  # metres between the camera and any furniture footprint
_WALL_CLEARANCE = 0.5


def _check_size(height: int, width: int, num_frames: int, min_frames: int) -> None:
  if int(height) < 8 or int(width) < 8:
    raise SceneError(f"image size must be at least 8x8 pixels, got {width}x{height}")
  if int(num_frames) < min_frames:
    raise SceneError(f"need at least {min_frames} frames, got {num_frames}")


def _rgb(hue: float, sat: float, val: float) -> np.ndarray:
  return np.array(colorsys.hsv_to_rgb(hue % 1.0, min(sat, 1.0), min(val, 1.0)))


def _appearance(rng: np.random.Generator, hue: float, *, room: bool) -> Appearance:
  """Muted large patterns for the room's faces, saturated small ones for objects."""
  sat = rng.uniform(0.2, 0.45) if room else rng.uniform(0.5, 0.9)
  val = rng.uniform(0.65, 0.95) if room else rng.uniform(0.6, 0.95)
  second = _rgb(hue + rng.uniform(0.04, 0.12), sat + 0.15, val * rng.uniform(0.45, 0.7))
  pattern = str(rng.choice(("stripes", "checker", "grid", "dots")))
  scale = rng.uniform(0.25, 0.6) if room else rng.uniform(0.08, 0.25)
  return Appearance(_rgb(hue, sat, val), second, pattern, scale, float(rng.choice((0.0, 0.0, 45.0, 90.0))))


def _make_room(rng: np.random.Generator, first_hue: float) -> Room:
  size_3 = np.array([rng.uniform(4.0, 8.0), rng.uniform(3.0, 6.0), rng.uniform(2.6, 3.0)])
  faces = tuple(_appearance(rng, first_hue + _GOLDEN * i, room=True) for i in range(6))
  return Room(np.zeros(3), size_3, faces)


def _rect_distance(points_n2: np.ndarray, center_2: np.ndarray, half_2: np.ndarray) -> np.ndarray:
  """Distance from 2D points to an axis-aligned rectangle (0 inside)."""
  outside_n2 = np.clip(np.abs(points_n2 - center_2) - half_2, 0.0, None)
  return np.linalg.norm(outside_n2, axis=1)


def _place_furniture(rng: np.random.Generator, room: Room, labels: Sequence[str], count: int,
                     first_hue: float, first_id: int = 1) -> list[tuple[str, Box]]:
  """Up to `count` boxes with distinct labels, each standing on the floor with its back to a wall and
  its long side along it, footprints at least 10 cm apart."""
  size_3 = room.max_3 - room.min_3
  placed: list[tuple[str, Box]] = []
  for label in rng.permutation(np.asarray(labels)):
    if len(placed) == count:
      break
    length_range, depth_range, height_range = _FURNITURE[str(label)]
    for _ in range(20):
      length, depth, height = (rng.uniform(*length_range), rng.uniform(*depth_range), rng.uniform(*height_range))
      wall = int(rng.integers(4))  # x-min, x-max, y-min, y-max
      across, along = (0, 1) if wall < 2 else (1, 0)
      if length > size_3[along] - 0.3 or depth > 0.4 * size_3[across]:
        continue
      gap = rng.uniform(0.02, 0.12)
      center_3, extent_3 = np.zeros(3), np.zeros(3)
      extent_3[[along, across, 2]] = length, depth, height
      center_3[along] = rng.uniform(room.min_3[along] + 0.05 + length / 2, room.max_3[along] - 0.05 - length / 2)
      center_3[across] = (room.min_3[across] + gap + depth / 2 if wall % 2 == 0
                          else room.max_3[across] - gap - depth / 2)
      center_3[2] = room.min_3[2] + height / 2
      if all(np.any(np.abs(center_3[:2] - b.center_3[:2]) >= (extent_3[:2] + b.extent_3[:2]) / 2 + 0.1)
             for _, b in placed):
        object_id = first_id + len(placed)
        hue = first_hue + _GOLDEN * (6 + len(placed))
        placed.append((str(label), Box(center_3, extent_3, object_id, _appearance(rng, hue, room=False))))
        break
  return placed


def _intrinsics(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """Square pixels, principal point at the centre, horizontal field of view 60-70 degrees."""
  focal = (width / 2) / np.tan(np.deg2rad(rng.uniform(60.0, 70.0)) / 2)
  return np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])


def _look(position_3: np.ndarray, yaw_deg: float, pitch_deg: float) -> np.ndarray:
  """cam_to_world of an OpenCV camera at `position_3` facing yaw (from +x toward +y) and pitch (up > 0),
  with no roll."""
  yaw, pitch = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
  forward = np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])
  right = np.cross(forward, [0.0, 0.0, 1.0])
  right /= np.linalg.norm(right)
  down = np.cross(forward, right)
  pose = np.eye(4)
  pose[:3, :3] = np.stack([right, down, forward], axis=1)
  pose[:3, 3] = position_3
  return pose


def _camera_clear(positions_t3: np.ndarray, room: Room, boxes: Sequence[Box]) -> bool:
  """Every camera position is inside the room, >= 0.5 m from the walls and clear of the furniture."""
  if not np.all(room.contains(positions_t3, 0.3)):
    return False
  xy_t2 = positions_t3[:, :2]
  if np.any(xy_t2 < room.min_3[:2] + _WALL_CLEARANCE) or np.any(xy_t2 > room.max_3[:2] - _WALL_CLEARANCE):
    return False
  return all(np.all(_rect_distance(xy_t2, b.center_3[:2], b.extent_3[:2] / 2) >= _CAMERA_CLEARANCE)
             for b in boxes)


def _room_camera_path(rng: np.random.Generator, room: Room, num_frames: int) -> np.ndarray:
  """[T, 4, 4] poses along an ellipse around the room's middle, walked at 0.12-0.42 m per frame, yaw
  turning 9-20 degrees per frame one way (with a wobble), pitch and height oscillating gently."""
  size_3 = room.max_3 - room.min_3
  center_2 = room.min_3[:2] + size_3[:2] * (0.5 + rng.uniform(-0.08, 0.08, 2))
  radii_2 = size_3[:2] * rng.uniform(0.1, 0.25, 2)
  radii_2 = np.minimum(radii_2, 2.0 * radii_2.min())  # no sharp ends, where steps would fold back
  angles = np.linspace(0.0, 2 * np.pi, 721)
  curve_a2 = center_2 + radii_2 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
  arc_a = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve_a2, axis=0), axis=1))])
  steps_t = rng.uniform(0.15, 0.35) * (1 + 0.2 * np.sin(rng.uniform(0.3, 1.0) * np.arange(num_frames - 1)
                                                          + rng.uniform(0, 2 * np.pi)))
  walked_t = (rng.uniform(0, arc_a[-1]) + np.concatenate([[0.0], np.cumsum(steps_t)])) % arc_a[-1]
  direction = rng.choice((-1.0, 1.0))
  angle_t = direction * np.interp(walked_t, arc_a, angles)
  frames = np.arange(num_frames)
  height_t = rng.uniform(1.35, 1.65) + 0.12 * np.sin(rng.uniform(0.2, 0.6) * frames + rng.uniform(0, 2 * np.pi))
  positions_t3 = np.concatenate(
      [center_2 + radii_2 * np.stack([np.cos(angle_t), np.sin(angle_t)], axis=1), height_t[:, None]], axis=1)
  yaw_t = (rng.uniform(-180, 180) + rng.choice((-1.0, 1.0)) * rng.uniform(9.0, 20.0) * frames
           + 8.0 * np.sin(rng.uniform(0.3, 0.9) * frames + rng.uniform(0, 2 * np.pi)))
  pitch_t = np.clip(rng.uniform(-13.0, 0.0) + rng.uniform(3.0, 7.0)
                    * np.sin(rng.uniform(0.2, 0.7) * frames + rng.uniform(0, 2 * np.pi)), -20.0, 20.0)
  return np.stack([_look(p, y, q) for p, y, q in zip(positions_t3, yaw_t, pitch_t)])


def _box_faces(extent_3: np.ndarray, *, skip_bottom: bool):
  """Faces of a box centred at the origin as (corner_3, edge_u_3, edge_v_3, area) in its own frame."""
  faces = []
  half_3 = np.asarray(extent_3, np.float64) / 2
  for axis in range(3):
    u_axis, v_axis = [a for a in range(3) if a != axis]
    for sign in (-1.0, 1.0):
      if skip_bottom and axis == 2 and sign < 0:
        continue
      edge_u, edge_v = np.zeros(3), np.zeros(3)
      edge_u[u_axis], edge_v[v_axis] = 2 * half_3[u_axis], 2 * half_3[v_axis]
      corner = -half_3.copy()
      corner[axis] = sign * half_3[axis]
      faces.append((corner, edge_u, edge_v, float(4 * half_3[u_axis] * half_3[v_axis])))
  return faces


def _sample_faces(rng: np.random.Generator, faces, count: int) -> tuple[np.ndarray, np.ndarray]:
  """`count` points uniform by area over the faces; returns the points and each one's face index."""
  areas = np.array([face[3] for face in faces])
  per_face = rng.multinomial(count, areas / areas.sum())
  face_n = np.repeat(np.arange(len(faces)), per_face)
  corner_n3 = np.array([f[0] for f in faces])[face_n]
  st_n2 = rng.uniform(0.0, 1.0, (count, 2))
  points_n3 = (corner_n3 + st_n2[:, :1] * np.array([f[1] for f in faces])[face_n]
               + st_n2[:, 1:] * np.array([f[2] for f in faces])[face_n])
  return points_n3, face_n


def _surface_points(rng: np.random.Generator, room: Room, boxes: Sequence[Box], count: int):
  """About `count` points uniform by area on the room's faces and the boxes' faces (bottoms skipped; floor
  under a box removed), with object ids."""
  room_center = (room.min_3 + room.max_3) / 2
  faces, owners = [], []
  for corner, edge_u, edge_v, area in _box_faces(room.max_3 - room.min_3, skip_bottom=False):
    faces.append((corner + room_center, edge_u, edge_v, area))
    owners.append(0)
  for box in boxes:
    for corner, edge_u, edge_v, area in _box_faces(box.extent_3, skip_bottom=True):
      r = box.rotation_33
      faces.append((r @ corner + box.center_3, r @ edge_u, r @ edge_v, area))
      owners.append(box.object_id)
  points_n3, face_n = _sample_faces(rng, faces, count)
  ids_n = np.asarray(owners, np.int32)[face_n]
  hidden_n = np.zeros(len(points_n3), bool)
  on_floor_n = (ids_n == 0) & (np.abs(points_n3[:, 2] - room.min_3[2]) < 1e-9)
  for box in boxes:
    hidden_n |= on_floor_n & box.contains(points_n3 * [1, 1, 0] + [0, 0, box.center_3[2]])
  return points_n3[~hidden_n], ids_n[~hidden_n]


def make_room_scene(seed: int, *, height: int = 96, width: int = 128, num_frames: int = 16,
                    name: str | None = None) -> StaticScene:
  """A furnished room seen along a smooth camera path: frames with RGB, depth and instances, the boxes as
  labelled objects (ids 1..n) and about 20k surface points (see the module docstring)."""
  _check_size(height, width, num_frames, 2)
  rng = np.random.default_rng([int(seed), 0])
  intrinsics_33 = _intrinsics(rng, height, width)
  first_hue = rng.uniform()
  for _ in range(200):
    room = _make_room(rng, first_hue)
    placed = _place_furniture(rng, room, tuple(_FURNITURE), int(rng.integers(3, 8)), first_hue)
    if len(placed) < 3:
      continue
    boxes = [box for _, box in placed]
    for _ in range(10):
      poses_t44 = _room_camera_path(rng, room, num_frames)
      if _camera_clear(poses_t44[:, :3, 3], room, boxes):
        break
    else:
      continue
    break
  else:  # pragma: no cover - the ranges above leave ample free space
    raise SceneError(f"seed {seed}: found no room layout with a free camera path")
  name = f"room-{seed}" if name is None else name
  frames = []
  for index, pose in enumerate(poses_t44):
    rgb, depth, instances = render(intrinsics_33, pose, height, width, boxes, room)
    frames.append(Frame(f"{name}/{index:04d}", rgb, depth, intrinsics_33, pose, instances))
  objects = [SceneObject(box.object_id, label, box.center_3, box.extent_3) for label, box in placed]
  points_n3, ids_n = _surface_points(rng, room, boxes, 20000)
  return StaticScene(name, tuple(frames), tuple(objects), points_n3, ids_n)


def _rotation_z(angle_rad: float) -> np.ndarray:
  c, s = np.cos(angle_rad), np.sin(angle_rad)
  return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rotation_x(angle_rad: float) -> np.ndarray:
  c, s = np.cos(angle_rad), np.sin(angle_rad)
  return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rotation_y(angle_rad: float) -> np.ndarray:
  c, s = np.cos(angle_rad), np.sin(angle_rad)
  return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _transform(rotation_33: np.ndarray, translation_3) -> np.ndarray:
  out = np.eye(4)
  out[:3, :3], out[:3, 3] = rotation_33, translation_3
  return out


def _floor_walk(rng: np.random.Generator, start_2: np.ndarray, num_frames: int, speed_range):
  """Positions [T, 2] of a walk that curves at a constant rate and speeds up or slows down."""
  heading, speed = rng.uniform(0, 2 * np.pi), rng.uniform(*speed_range)
  turn, accel = rng.uniform(-0.12, 0.12), rng.uniform(-0.01, 0.01)
  positions = [np.asarray(start_2, np.float64)]
  for _ in range(num_frames - 1):
    positions.append(positions[-1] + speed * np.array([np.cos(heading), np.sin(heading)]))
    heading += turn
    speed = float(np.clip(speed + accel, speed_range[0], speed_range[1]))
  return np.stack(positions)


@dataclasses.dataclass(frozen=True, eq=False)
class _Mover:
  """A box moving rigidly: extent, texture, id, its pose per frame (box frame to world, [T, 4, 4]), and
  whether its bottom face rests on the floor (no track points there)."""

  extent_3: np.ndarray
  appearance: Appearance
  object_id: int
  poses_t44: np.ndarray
  skip_bottom: bool

  def box(self, t: int) -> Box:
    return Box(self.poses_t44[t, :3, 3], self.extent_3, self.object_id, self.appearance, self.poses_t44[t, :3, :3])


PathCheck = Callable[[np.ndarray, float, Sequence[tuple[np.ndarray, float]]], bool]


def _moving_objects(rng: np.random.Generator, count: int, stage_2: np.ndarray, num_frames: int, first_id: int,
                    first_hue: float, path_ok: PathCheck) -> list[_Mover] | None:
  """`count` boxes sliding on the floor (3-20 cm and 0.5-4 degrees of yaw per frame), each walk redrawn
  until `path_ok` accepts it next to the walks already kept; None when one cannot be placed."""
  movers, kept = [], []
  for k in range(count):
    for _ in range(50):
      extent_3 = np.array([rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.8), rng.uniform(0.25, 0.8)])
      path_t2 = _floor_walk(rng, stage_2 + rng.uniform(-0.7, 0.7, 2), num_frames, (0.03, 0.2))
      radius = 0.5 * float(np.hypot(extent_3[0], extent_3[1]))
      if path_ok(path_t2, radius, kept):
        break
    else:
      return None
    kept.append((path_t2, radius))
    turn = np.deg2rad(rng.choice((-1, 1)) * rng.uniform(0.5, 4.0))
    yaw_t = rng.uniform(0, 2 * np.pi) + turn * np.arange(num_frames)
    poses_t44 = np.stack([_transform(_rotation_z(yaw), [*xy, extent_3[2] / 2]) for xy, yaw in zip(path_t2, yaw_t)])
    appearance = _appearance(rng, first_hue + _GOLDEN * (first_id + k + 5), room=False)
    movers.append(_Mover(extent_3, appearance, first_id + k, poses_t44, skip_bottom=True))
  return movers


def _moving_figure(rng: np.random.Generator, stage_2: np.ndarray, camera_2: np.ndarray, num_frames: int,
                   first_id: int, first_hue: float, path_ok: PathCheck) -> list[_Mover] | None:
  """A figure of 3-5 boxes walking slowly and turning, each part with its own rigid motion: the legs
  follow the walk, the torso leans about the hip and bobs, the head turns, nods and bobs, 0-2 arms swing
  forward and out from the shoulders. It faces the camera within about 35 degrees, so the torso does not
  hide an arm for long. None when `path_ok` rejects every walk tried."""
  scale = rng.uniform(0.85, 1.1)
  for _ in range(50):
    path_t2 = _floor_walk(rng, stage_2 + rng.uniform(-0.4, 0.4, 2), num_frames, (0.03, 0.12))
    if path_ok(path_t2, 0.6 * scale, []):
      break
  else:
    return None
  frames = np.arange(num_frames)
  # The figure's front is its local +y, at yaw + 90 degrees in the world.
  to_camera = np.arctan2(camera_2[1] - stage_2[1], camera_2[0] - stage_2[0])
  yaw_t = (to_camera - np.pi / 2 + np.deg2rad(rng.uniform(-20.0, 20.0))
           + np.deg2rad(rng.choice((-1, 1)) * rng.uniform(0.5, 2.5)) * (frames - (num_frames - 1) / 2))

  def wave(mean, swing, phase=None):
    """A joint value per frame: a mean plus a sinusoidal swing."""
    phase = rng.uniform(0, 2 * np.pi) if phase is None else phase
    return rng.uniform(*mean) + rng.uniform(*swing) * np.sin(rng.uniform(0.6, 1.0) * frames + phase)

  # Rigid-body grouping tells parts apart only when distances between them change by more than ~1 cm per
  # frame; turning a part about a joint barely changes its distances to the part it hangs from, so the
  # torso and head also slide along the body's axis (a robot-like bob) and the arms swing out sideways.
  root_t = [_transform(_rotation_z(yaw), [*xy, 0.0]) for xy, yaw in zip(path_t2, yaw_t)]
  legs, torso, head, arm = (np.array(e) * scale for e in ([0.3, 0.18, 0.8], [0.38, 0.22, 0.6],
                                                          [0.2, 0.2, 0.22], [0.1, 0.1, 0.6]))
  # The gaps (>= 5 cm at the hip, 4 cm at the neck) keep the turned parts apart (bend, nod <= 22 degrees).
  hip = legs[2] + 0.02 * scale
  torso_lift_t = scale * wave((0.1, 0.1), (0.05, 0.07))
  bend_t = -np.deg2rad(wave((10.0, 12.0), (6.0, 10.0)))  # leaning forward (the front is local +y)
  torso_t = [r @ _transform(_rotation_x(b), [0, 0, hip + lift])
             for r, b, lift in zip(root_t, bend_t, torso_lift_t)]
  head_lift_t = scale * wave((0.1, 0.1), (0.04, 0.06))
  turn_t, nod_t = np.deg2rad(wave((-10.0, 10.0), (30.0, 50.0))), -np.deg2rad(wave((6.0, 10.0), (3.0, 10.0)))
  parts = [
      (legs, [r @ _transform(np.eye(3), [0, 0, legs[2] / 2]) for r in root_t]),
      (torso, [t @ _transform(np.eye(3), [0, 0, torso[2] / 2]) for t in torso_t]),
      (head, [t @ _transform(_rotation_z(a) @ _rotation_x(b), [0, 0, torso[2] + lift])
              @ _transform(np.eye(3), [0, 0, head[2] / 2])
              for t, a, b, lift in zip(torso_t, turn_t, nod_t, head_lift_t)]),
  ]
  num_arms = int(rng.integers(0, 3))
  phase = rng.uniform(0, 2 * np.pi)
  for side in (-1.0, 1.0)[:num_arms]:
    forward_t = np.deg2rad(wave((10.0, 30.0), (20.0, 40.0), phase + (side > 0) * np.pi))
    out_t = np.deg2rad(wave((25.0, 25.0), (15.0, 20.0)))  # stays >= 5 degrees: never into the torso
    shoulder = [side * (torso[0] / 2 + arm[0] / 2 + 0.03 * scale), 0.0, torso[2] - 0.02 * scale]
    parts.append((arm, [t @ _transform(_rotation_y(-side * o) @ _rotation_x(f), shoulder)
                        @ _transform(np.eye(3), [0, 0, -arm[2] / 2]) for t, f, o in zip(torso_t, forward_t, out_t)]))
  return [_Mover(extent, _appearance(rng, first_hue + _GOLDEN * (first_id + k + 5), room=False),
                 first_id + k, np.stack(poses), skip_bottom=False)
          for k, (extent, poses) in enumerate(parts)]


def _track_points(rng: np.random.Generator, movers: Sequence[_Mover], static_points_n3: np.ndarray,
                  num_moving: int) -> np.ndarray:
  """[T, N, 3]: points fixed in each mover's frame (half split evenly, half by area) moved with it, then
  the static points."""
  faces_per = [_box_faces(m.extent_3, skip_bottom=m.skip_bottom) for m in movers]
  areas = np.array([sum(f[3] for f in faces) for faces in faces_per])
  shares = 0.5 / len(movers) + 0.5 * areas / areas.sum()
  counts = np.floor(shares * num_moving).astype(int)
  counts[: num_moving - counts.sum()] += 1
  tracks = []
  for mover, faces, count in zip(movers, faces_per, counts):
    local_n3 = _sample_faces(rng, faces, int(count))[0]
    tracks.append(np.einsum("tij,nj->tni", mover.poses_t44[:, :3, :3], local_n3) + mover.poses_t44[:, None, :3, 3])
  num_frames = movers[0].poses_t44.shape[0]
  tracks.append(np.broadcast_to(static_points_n3, (num_frames, *static_points_n3.shape)))
  return np.concatenate(tracks, axis=1)


def make_track_scene(seed: int, source: str, *, height: int = 96, width: int = 128, num_frames: int = 12,
                     num_points: int = 300) -> TrackScene:
  """A room with moving boxes (source "room_objects") or a moving figure of boxes ("room_figures"), a
  camera that stays or moves slightly, and point tracks with per-frame visibility (module docstring).
  About a fifth of the points are static (on the room or its furniture), the rest on the moving boxes."""
  if source not in SOURCES:
    raise ValueError(f"unknown track source {source!r}; accepted sources: {', '.join(SOURCES)}")
  _check_size(height, width, num_frames, 2)
  if int(num_points) < 20:
    raise SceneError(f"need at least 20 track points, got {num_points}")
  rng = np.random.default_rng([int(seed), 1 + SOURCES.index(source)])
  intrinsics_33 = _intrinsics(rng, height, width)
  first_hue = rng.uniform()
  frames = np.arange(num_frames)
  num_movers = int(rng.integers(1, 4))  # drawn once: crowded layouts are retried, not thinned
  target_z = 0.4 if source == "room_objects" else 0.9  # the height the camera aims at
  for _ in range(200):
    room = _make_room(rng, first_hue)
    size_3 = room.max_3 - room.min_3
    static = [box for _, box in _place_furniture(rng, room, _SHALLOW, int(rng.integers(2, 5)), first_hue)]
    # The camera stands near one end wall looking along the room's x axis at a stage 1.8-3 m away.
    facing = rng.choice((-1.0, 1.0))
    camera_x = room.min_3[0] + 0.85 if facing > 0 else room.max_3[0] - 0.85
    distance = rng.uniform(1.8, max(1.85, min(3.0, size_3[0] - 1.8)))
    stage_2 = np.array([camera_x + facing * distance, room.min_3[1] + size_3[1] * rng.uniform(0.4, 0.6)])
    base_3 = np.array([camera_x, stage_2[1] + rng.uniform(-0.3, 0.3), rng.uniform(1.3, 1.7)])
    wobble = 0.0 if rng.uniform() < 0.3 else rng.uniform(0.01, 0.05)  # metres per frame, 0 = fixed camera
    phase = rng.uniform(0, 2 * np.pi, 3)
    positions_t3 = base_3 + wobble * np.stack([np.sin(0.5 * frames + phase[0]), 2 * np.sin(0.4 * frames + phase[1]),
                                               0.5 * np.sin(0.3 * frames + phase[2])], axis=1)
    yaw_t = np.rad2deg(np.arctan2(stage_2[1] - base_3[1], stage_2[0] - base_3[0])) + (wobble > 0) * 2.0 * np.sin(
        0.35 * frames + phase[0])
    pitch_t = -np.rad2deg(np.arctan2(base_3[2] - target_z, distance)) + (wobble > 0) * 1.5 * np.sin(
        0.3 * frames + phase[1])
    poses_t44 = np.stack([_look(p, y, q) for p, y, q in zip(positions_t3, yaw_t, pitch_t)])
    if not _camera_clear(positions_t3, room, static):
      continue

    def path_ok(path_t2, radius, kept, room=room, static=static, poses_t44=poses_t44):
      return _mover_path_ok(path_t2, radius, kept, room, static, poses_t44, intrinsics_33, height, width)

    if source == "room_objects":
      movers = _moving_objects(rng, num_movers, stage_2, num_frames, len(static) + 1, first_hue, path_ok)
    else:
      movers = _moving_figure(rng, stage_2, base_3[:2], num_frames, len(static) + 1, first_hue, path_ok)
    if movers is not None:
      break
  else:  # pragma: no cover - the ranges above leave ample free space
    raise SceneError(f"seed {seed}: found no track layout with the movers in view")
  static_points_n3 = _static_track_points(rng, int(num_points) // 5, intrinsics_33, poses_t44[0], height, width,
                                          static, room)
  points_tn3 = _track_points(rng, movers, static_points_n3, int(num_points) - len(static_points_n3))
  rgb_thw3 = np.empty((num_frames, height, width, 3), np.uint8)
  visible_tn = np.empty(points_tn3.shape[:2], bool)
  for t in range(num_frames):
    boxes = static + [m.box(t) for m in movers]
    rgb_thw3[t] = render(intrinsics_33, poses_t44[t], height, width, boxes, room)[0]
    visible_tn[t] = ray_visible(points_tn3[t], intrinsics_33, poses_t44[t], height, width, boxes, room)
  order = rng.permutation(points_tn3.shape[1])  # no meaning in the order of the tracks
  return TrackScene(f"{source}-{seed}", source, rgb_thw3, intrinsics_33, poses_t44, points_tn3[:, order],
                    visible_tn[:, order])


def _static_track_points(rng: np.random.Generator, count: int, intrinsics_33: np.ndarray, pose_44: np.ndarray,
                         height: int, width: int, static: Sequence[Box], room: Room) -> np.ndarray:
  """Static points where random pixels of the first view meet the room or the static furniture."""
  origins_n3, dirs_n3 = pixel_rays(intrinsics_33, pose_44, height, width)
  pick = rng.choice(height * width, size=count, replace=False)
  return cast_rays(origins_n3[pick], dirs_n3[pick], static, room)[3]


def _mover_path_ok(path_t2: np.ndarray, radius: float, kept: Sequence[tuple[np.ndarray, float]], room: Room,
                   static: Sequence[Box], poses_t44: np.ndarray, intrinsics_33: np.ndarray, height: int,
                   width: int) -> bool:
  """A mover's footprint (a disc of `radius` around its walk, [T, 2]) stays in the room, off the furniture,
  the kept movers' discs and the camera, and its centre stays in the middle 90 % of every frame."""
  if np.any(path_t2 < room.min_3[:2] + radius + 0.1) or np.any(path_t2 > room.max_3[:2] - radius - 0.1):
    return False
  if any(np.any(_rect_distance(path_t2, b.center_3[:2], b.extent_3[:2] / 2) < radius + 0.1) for b in static):
    return False
  if np.any(np.linalg.norm(path_t2 - poses_t44[:, :2, 3], axis=1) < radius + 0.8):
    return False
  if any(np.any(np.linalg.norm(path_t2 - other_t2, axis=1) < radius + other + 0.05) for other_t2, other in kept):
    return False
  ground_t3 = np.concatenate([path_t2, np.full((len(path_t2), 1), 0.3)], axis=1)
  cam_t3 = np.einsum("tji,tj->ti", poses_t44[:, :3, :3], ground_t3 - poses_t44[:, :3, 3])
  if np.any(cam_t3[:, 2] <= 0.5):
    return False
  u_t = intrinsics_33[0, 0] * cam_t3[:, 0] / cam_t3[:, 2] + intrinsics_33[0, 2]
  v_t = intrinsics_33[1, 1] * cam_t3[:, 1] / cam_t3[:, 2] + intrinsics_33[1, 2]
  return bool(np.all(np.abs(u_t - width / 2) <= 0.45 * width) and np.all(np.abs(v_t - height / 2) <= 0.45 * height))

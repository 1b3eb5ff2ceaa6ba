"""Vectorized numpy ray casting of walking figures (capsules and spheres) in front of a ground and a back wall.

A frame's scene (`Scene`, built by `scene_at` from `figures.Figure`s at time t) is a set of capsules
(segment a..b grown by a radius; a sphere when a == b), each carrying an identity and a part kind
(`figures.PART_KINDS`), plus a `Backdrop`: the ground plane y = 0 and a back wall z = wall_z facing
-z. The camera must stand above the ground and in front of the wall, and every ray must meet the
ground or the wall, so every pixel has a finite depth (a view that sees past both raises).

All rays of a frame go through numpy at once, against all capsules of a figure at once: a pinhole
camera's rays share their origin, so the per-capsule terms are [M] vectors and the per-ray terms
two [N, M] matrix products. Only the rays that meet a figure's bounding sphere are tested against
its capsules (a figure covers a small part of the image). A capsule's first hit is the nearest valid
hit of its finite cylinder and of its two end spheres; its normal is the hit point minus the nearest
point of the segment, over the radius.

Shading is the surface colour times (ambient + Lambert) under one fixed directional light. Colours:
the ground and the wall carry two-colour checkers in world coordinates (so camera motion shows);
figure parts take their identity's colour for their kind, and shirt parts the identity's pattern,
evaluated in the part's own coordinates (distance along the axis, angle around it measured from the
figure's heading), so the pattern moves with the body.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jaxlab.video.figures import PART_KINDS, PATTERNS, Figure, figure_pose

LIGHT_3 = np.array([-0.35, 0.8, -0.5]) / np.linalg.norm([-0.35, 0.8, -0.5])  # towards the light, world axes
AMBIENT = 0.42
PATTERN_BAND = 0.09  # metres per stripe / check along a part's axis
CHECK_SECTOR = np.pi / 3  # radians per check around a part's axis
_EPS = 1e-9
_SHIRT = PART_KINDS.index("shirt")


def _color(value, what: str) -> np.ndarray:
  color = np.asarray(value, np.float64)
  if color.shape != (3,) or not np.all(np.isfinite(color)) or color.min() < 0 or color.max() > 1:
    raise ValueError(f"{what} must be 3 values in [0, 1], got {value!r}")
  return color


@dataclasses.dataclass(frozen=True, eq=False)
class Backdrop:
  """The ground (y = 0) and the back wall (z = wall_z, facing -z), each a checker of two colours with
  square cells of `*_cell` metres (ground cells in x, z; wall cells in x, y)."""

  ground_a_rgb: np.ndarray
  ground_b_rgb: np.ndarray
  ground_cell: float
  wall_z: float
  wall_a_rgb: np.ndarray
  wall_b_rgb: np.ndarray
  wall_cell: float

  def __post_init__(self):
    for field in ("ground_a_rgb", "ground_b_rgb", "wall_a_rgb", "wall_b_rgb"):
      object.__setattr__(self, field, _color(getattr(self, field), f"backdrop {field}"))
    if not (self.ground_cell > 0 and self.wall_cell > 0):
      raise ValueError(f"backdrop cells must be > 0 metres, got {self.ground_cell} and {self.wall_cell}")
    if not np.isfinite(self.wall_z):
      raise ValueError(f"backdrop wall_z must be finite, got {self.wall_z}")


@dataclasses.dataclass(frozen=True, eq=False)
class Scene:
  """Everything one frame shows (module docstring).

  a_m3, b_m3, radius_m: the M capsules; identity_m int32 (>= 1); kind_m int32 index into PART_KINDS;
  forward_m3 the owning figure's heading (pattern orientation);
  colors_ik3 [I, len(PART_KINDS), 3] colour per identity (row n for identity n; row 0 unused);
  pattern_i int32 [I] index into PATTERNS per identity;
  joints_pk3 float32 [P, 18, 3] the figures' keypoints at the same instant (figure order).
  """

  a_m3: np.ndarray
  b_m3: np.ndarray
  radius_m: np.ndarray
  identity_m: np.ndarray
  kind_m: np.ndarray
  forward_m3: np.ndarray
  colors_ik3: np.ndarray
  pattern_i: np.ndarray
  joints_pk3: np.ndarray
  backdrop: Backdrop


def scene_at(figures: Sequence[Figure], t: float, backdrop: Backdrop) -> Scene:
  """The scene at time t (seconds) of `figures` (distinct identities) in front of `backdrop`."""
  identities = [f.identity for f in figures]
  if len(set(identities)) != len(identities):
    raise ValueError(f"figures must have distinct identities, got {identities}")
  num_rows = max(identities, default=0) + 1
  colors_ik3 = np.zeros((num_rows, len(PART_KINDS), 3))
  pattern_i = np.zeros(num_rows, np.int32)
  a, b, radius, identity, kind, forward, joints = [], [], [], [], [], [], []
  for figure in figures:
    joints_k3, parts, fwd_3 = figure_pose(figure, t)
    joints.append(joints_k3)
    for part in parts:
      a.append(part.a_3)
      b.append(part.b_3)
      radius.append(part.radius)
      kind.append(PART_KINDS.index(part.kind))
    identity += [figure.identity] * len(parts)
    forward += [fwd_3] * len(parts)
    row = colors_ik3[figure.identity]
    row[PART_KINDS.index("skin")] = figure.skin_rgb
    row[PART_KINDS.index("hair")] = figure.hair_rgb
    row[_SHIRT] = figure.shirt_rgb
    row[PART_KINDS.index("trousers")] = figure.trousers_rgb
    row[PART_KINDS.index("shoes")] = np.asarray(figure.trousers_rgb) * 0.35 + 0.05  # darker than the trousers
    pattern_i[figure.identity] = PATTERNS.index(figure.pattern)
  m = len(a)
  return Scene(
      a_m3=np.asarray(a, np.float64).reshape(m, 3), b_m3=np.asarray(b, np.float64).reshape(m, 3),
      radius_m=np.asarray(radius, np.float64), identity_m=np.asarray(identity, np.int32),
      kind_m=np.asarray(kind, np.int32), forward_m3=np.asarray(forward, np.float64).reshape(m, 3),
      colors_ik3=colors_ik3, pattern_i=pattern_i,
      joints_pk3=np.asarray(joints, np.float32).reshape(len(figures), -1, 3), backdrop=backdrop)


def _sphere_hits(origin_3: np.ndarray, dirs_n3: np.ndarray, centers_m3: np.ndarray, radius_m: np.ndarray):
  """Entry distance [N, M] of unit rays into spheres (inf on a miss or behind the origin)."""
  oc_m3 = origin_3 - centers_m3
  b_nm = dirs_n3 @ oc_m3.T
  h_nm = b_nm * b_nm - ((oc_m3 * oc_m3).sum(axis=1) - radius_m * radius_m)
  t_nm = -b_nm - np.sqrt(np.maximum(h_nm, 0.0))
  return np.where((h_nm >= 0) & (t_nm > _EPS), t_nm, np.inf)


def capsule_hits(origin_3: np.ndarray, dirs_n3: np.ndarray, a_m3: np.ndarray, b_m3: np.ndarray,
                 radius_m: np.ndarray) -> np.ndarray:
  """First-hit distance [N, M] of unit rays from one origin into each capsule (inf on a miss).

  The nearest of the finite cylinder's lateral hit (between the end planes) and the two end spheres'
  hits: the capsule is their union, and a ray from outside enters the union at the first of them.
  """
  ba_m3, oa_m3 = b_m3 - a_m3, origin_3 - a_m3
  baba_m = (ba_m3 * ba_m3).sum(axis=1)
  baoa_m = (ba_m3 * oa_m3).sum(axis=1)
  oaoa_m = (oa_m3 * oa_m3).sum(axis=1)
  bard_nm = dirs_n3 @ ba_m3.T
  rdoa_nm = dirs_n3 @ oa_m3.T
  # |(p - a) x axis| = r for p = o + t d, times baba: A t^2 + 2 B t + C = 0.
  a_nm = baba_m - bard_nm * bard_nm
  b_nm = baba_m * rdoa_nm - baoa_m * bard_nm
  c_m = baba_m * oaoa_m - baoa_m * baoa_m - radius_m * radius_m * baba_m
  h_nm = b_nm * b_nm - a_nm * c_m
  ok_nm = (a_nm > _EPS) & (h_nm >= 0)
  t_nm = (-b_nm - np.sqrt(np.maximum(h_nm, 0.0))) / np.where(ok_nm, a_nm, 1.0)
  y_nm = baoa_m + t_nm * bard_nm  # (p - a) . (b - a): between the end planes when in (0, baba)
  ok_nm &= (y_nm > 0) & (y_nm < baba_m) & (t_nm > _EPS)
  t_nm = np.where(ok_nm, t_nm, np.inf)
  t_nm = np.minimum(t_nm, _sphere_hits(origin_3, dirs_n3, a_m3, radius_m))
  return np.minimum(t_nm, _sphere_hits(origin_3, dirs_n3, b_m3, radius_m))


def _checker(x_n: np.ndarray, y_n: np.ndarray, cell: float) -> np.ndarray:
  return (np.floor(x_n / cell).astype(np.int64) + np.floor(y_n / cell).astype(np.int64)) % 2 == 1


def _part_colors(scene: Scene, part_k: np.ndarray, hits_k3: np.ndarray) -> np.ndarray:
  """Texture colour [K, 3] of hits on parts `part_k`: the identity's colour for the part's kind, with
  the identity's pattern on shirt parts."""
  ident_k, kind_k = scene.identity_m[part_k], scene.kind_m[part_k]
  colors_k3 = scene.colors_ik3[ident_k, kind_k]
  pattern_k = np.where(kind_k == _SHIRT, scene.pattern_i[ident_k], 0)
  if not pattern_k.any():
    return colors_k3
  a_k3, ba_k3 = scene.a_m3[part_k], scene.b_m3[part_k] - scene.a_m3[part_k]
  length_k = np.linalg.norm(ba_k3, axis=1)
  axis_k3 = np.where(length_k[:, None] > _EPS, ba_k3 / np.maximum(length_k, _EPS)[:, None], [0.0, 1.0, 0.0])
  along_k = ((hits_k3 - a_k3) * axis_k3).sum(axis=1)
  radial_k3 = hits_k3 - a_k3 - np.clip(along_k, 0.0, length_k)[:, None] * axis_k3
  fwd_k3 = scene.forward_m3[part_k]
  u_k3 = fwd_k3 - (fwd_k3 * axis_k3).sum(axis=1, keepdims=True) * axis_k3
  u_k3 /= np.maximum(np.linalg.norm(u_k3, axis=1, keepdims=True), _EPS)
  v_k3 = np.cross(axis_k3, u_k3)
  angle_k = np.arctan2((radial_k3 * v_k3).sum(axis=1), (radial_k3 * u_k3).sum(axis=1))
  band_k = np.floor(along_k / PATTERN_BAND).astype(np.int64)
  stripes_k = (pattern_k == PATTERNS.index("stripes")) & (band_k % 2 == 1)
  checks_k = (pattern_k == PATTERNS.index("checks")) & (
      (band_k + np.floor(angle_k / CHECK_SECTOR).astype(np.int64)) % 2 == 1)
  colors_k3 = np.where(stripes_k[:, None], 0.35 * colors_k3 + 0.6, colors_k3)  # pale stripes
  return np.where(checks_k[:, None], 0.3 * colors_k3, colors_k3)  # dark checks


def render_frame(scene: Scene, intrinsics_33: np.ndarray, cam_to_world_44: np.ndarray, height: int,
                 width: int) -> dict[str, np.ndarray]:
  """One pinhole view of `scene`; pixel centres at +0.5, OpenCV camera axes.

  Returns dict(rgb_hw3 float32 in [0, 1], depth_hw float32 metres along the camera's +z,
  normal_hw3 float32 unit camera-space normals facing the camera, ids_hw int32: 0 on the ground and
  the wall, the identity on figures).

  Raises:
    ValueError: the camera is below the ground or behind the wall, or a ray meets nothing.
  """
  k = np.asarray(intrinsics_33, np.float64)
  pose = np.asarray(cam_to_world_44, np.float64)
  rot_33, origin_3 = pose[:3, :3], pose[:3, 3]
  backdrop = scene.backdrop
  if not (origin_3[1] > 0 and origin_3[2] < backdrop.wall_z):
    raise ValueError(f"the camera at {origin_3.round(3).tolist()} must stand above the ground (y > 0) and in "
                     f"front of the wall (z < {backdrop.wall_z:.3g})")
  v, u = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
  pix_3n = np.stack([u.ravel(), v.ravel(), np.ones(height * width)])
  cam_n3 = np.linalg.solve(k, pix_3n).T
  cam_n3 /= np.linalg.norm(cam_n3, axis=1, keepdims=True)
  dirs_n3 = cam_n3 @ rot_33.T

  dy_n, dz_n = dirs_n3[:, 1], dirs_n3[:, 2]
  t_ground_n = np.where(dy_n < -_EPS, -origin_3[1] / np.where(dy_n < -_EPS, dy_n, -1.0), np.inf)
  t_wall_n = np.where(dz_n > _EPS, (backdrop.wall_z - origin_3[2]) / np.where(dz_n > _EPS, dz_n, 1.0), np.inf)
  on_wall_n = t_wall_n < t_ground_n
  t_n = np.minimum(t_ground_n, t_wall_n)
  if not np.isfinite(t_n).all():
    raise ValueError(f"{int((~np.isfinite(t_n)).sum())} rays meet neither the ground nor the wall: the camera "
                     "sees past the scene")
  part_n = np.full(height * width, -1)
  for identity in np.unique(scene.identity_m):
    # Only the rays through the figure's bounding sphere can meet its parts.
    parts_m = np.flatnonzero(scene.identity_m == identity)
    ends_e3 = np.concatenate([scene.a_m3[parts_m], scene.b_m3[parts_m]])
    centre_3 = ends_e3.mean(axis=0)
    reach = (np.linalg.norm(ends_e3 - centre_3, axis=1) + np.tile(scene.radius_m[parts_m], 2)).max()
    rays_r = np.flatnonzero(np.isfinite(_sphere_hits(origin_3, dirs_n3, centre_3[None], np.array([reach]))[:, 0]))
    if not rays_r.size:
      continue
    t_rm = capsule_hits(origin_3, dirs_n3[rays_r], scene.a_m3[parts_m], scene.b_m3[parts_m], scene.radius_m[parts_m])
    nearest_r = np.argmin(t_rm, axis=1)
    t_part_r = t_rm[np.arange(len(rays_r)), nearest_r]
    closer_r = t_part_r < t_n[rays_r]
    part_n[rays_r[closer_r]] = parts_m[nearest_r[closer_r]]
    t_n[rays_r[closer_r]] = t_part_r[closer_r]
  hits_n3 = origin_3 + t_n[:, None] * dirs_n3

  normals_n3 = np.where(on_wall_n[:, None], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0])
  colors_n3 = np.where(
      on_wall_n[:, None],
      np.where(_checker(hits_n3[:, 0], hits_n3[:, 1], backdrop.wall_cell)[:, None], backdrop.wall_b_rgb,
               backdrop.wall_a_rgb),
      np.where(_checker(hits_n3[:, 0], hits_n3[:, 2], backdrop.ground_cell)[:, None], backdrop.ground_b_rgb,
               backdrop.ground_a_rgb))
  ids_n = np.zeros(height * width, np.int32)
  on_part = part_n >= 0
  if on_part.any():
    part_k = part_n[on_part]
    hits_k3 = hits_n3[on_part]
    a_k3, ba_k3 = scene.a_m3[part_k], scene.b_m3[part_k] - scene.a_m3[part_k]
    along_k = np.clip(((hits_k3 - a_k3) * ba_k3).sum(axis=1) / np.maximum((ba_k3 * ba_k3).sum(axis=1), _EPS), 0, 1)
    radial_k3 = hits_k3 - a_k3 - along_k[:, None] * ba_k3
    normals_n3[on_part] = radial_k3 / np.linalg.norm(radial_k3, axis=1, keepdims=True)
    colors_n3[on_part] = _part_colors(scene, part_k, hits_k3)
    ids_n[on_part] = scene.identity_m[part_k]

  shade_n = AMBIENT + (1.0 - AMBIENT) * np.clip(normals_n3 @ LIGHT_3, 0.0, None)
  rgb_n3 = np.clip(colors_n3 * shade_n[:, None], 0.0, 1.0)
  normal_cam_n3 = normals_n3 @ rot_33  # R^T n
  facing_n = (normal_cam_n3 * cam_n3).sum(axis=1) > 0
  normal_cam_n3 = np.where(facing_n[:, None], -normal_cam_n3, normal_cam_n3)
  normal_cam_n3 /= np.linalg.norm(normal_cam_n3, axis=1, keepdims=True)
  depth_n = t_n * cam_n3[:, 2]  # camera z of the hit: distance along the unit ray times its z
  return {
      "rgb_hw3": rgb_n3.reshape(height, width, 3).astype(np.float32),
      "depth_hw": depth_n.reshape(height, width).astype(np.float32),
      "normal_hw3": normal_cam_n3.reshape(height, width, 3).astype(np.float32),
      "ids_hw": ids_n.reshape(height, width),
  }

"""The tabletop's Gaussian parts, reconstructed from the simulator's multi-view captures.

The simulator plays the real scene; its camera images (with segmentation masks) play the
photographs. Three kinds of parts come out:

- **background** (table, tray, floor): every capture with the robot and the object hidden is
  back-projected through its depth map into coloured, normal-oriented discs (the depth prior
  a real pipeline gets from a depth network), then refined by jaxlab's 3DGS fitting against
  those captures (`fit_background`);
- **robot links**: surface samples of each link's URDF visuals, in the link frame, coloured
  from the link's segmentation mask in captures of the robot posed at a few configurations
  (link poses from `forward_kinematics`);
- **objects**: surface samples of each `OBJECTS` asset in its URDF frame, coloured from its
  body mask, plus its resting pose on the table and its grasp point.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import files
from jaxlab.robosplat import kinematics, meshes, urdf
from jaxlab.robosplat.assets import color_from_views, sample_spacing, surface_gaussians
from jaxlab.robosplat.background import fit_background
from jaxlab.robosplat.scene import stack_links
from jaxlab.robosplat.sim.cameras import FRONT, SIDE, CameraSpec, orbit_cameras
from jaxlab.robosplat.sim.capture import capture_views, masks_for
from jaxlab.robosplat.embodiments import Embodiment, get_embodiment
from jaxlab.robosplat.sim.world import INIT_QPOS, OBJECTS, TabletopSpec, World
from jaxlab.splat import Camera, Gaussians, stack_cameras

log = logging.getLogger(__name__)

# Arm configurations the robot is photographed in: home plus two offsets from it that turn
# the links, so every side of every link is seen by some view (fingers open, half open).
_ROBOT_CAPTURE_OFFSETS = (
    (np.zeros(7), 0.04),
    (np.array([0.6, 0.3, -0.3, 0.35, 0.4, -0.25, -0.58]), 0.04),
    (np.array([-0.7, -0.3, 0.4, -0.25, -0.5, 0.35, 0.82]), 0.02),
)


def robot_capture_qpos(embodiment: Embodiment) -> list[np.ndarray]:
  """The 9-joint configurations an embodiment's links are photographed in."""
  home = embodiment.init_qpos_9[:7]
  return [np.concatenate([home + offset, [finger, finger]]) for offset, finger in _ROBOT_CAPTURE_OFFSETS]
# A background Gaussian within this height of the table top (and on it) is the table top.
_TABLE_TOP_BAND = 0.008


@dataclasses.dataclass(frozen=True)
class AssetSettings:
  """How densely the parts are sampled and how long the background is fitted.

  Attributes:
    num_views: orbit views for the captures (the two policy cameras are added).
    capture_width: capture resolution (square).
    oversample: supersampling of the captures (soft edges, as a real camera's).
    points_per_link: surface samples per robot link.
    points_per_object: surface samples per object (the same for all: one compiled render).
    background_points: back-projected starting Gaussians of the background.
    fit_steps: 3DGS optimisation steps of the background (0: keep the back-projection).
    seed: sampling and fitting.
  """

  num_views: int = 24
  capture_width: int = 64
  oversample: int = 2
  points_per_link: int = 500
  points_per_object: int = 600
  background_points: int = 6000
  fit_steps: int = 300
  seed: int = 0


@dataclasses.dataclass(frozen=True)
class ObjectPart:
  """One graspable object as Gaussians.

  Attributes:
    gaussians: in the object's URDF frame.
    rest_pose_44: the URDF-frame pose in which it rests on the table with its bounding-box
      centre above the world origin at yaw 0; at (x, y, yaw) the pose is
      Tr(x, y, 0) · Rz(yaw) · rest_pose_44.
    center_local_3: the bounding-box centre (the grasp point) in the URDF frame.
    grasp_height: height of a top-down grasp above the table (m).
  """

  gaussians: Gaussians
  rest_pose_44: np.ndarray
  center_local_3: np.ndarray
  grasp_height: float

  def pose_at(self, x: float, y: float, yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    place = np.array([[c, -s, 0, x], [s, c, 0, y], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    return place @ self.rest_pose_44


@dataclasses.dataclass(frozen=True)
class SceneParts:
  """Everything a demonstration frame is composed from.

  Attributes:
    background: static world-frame Gaussians (fitted).
    table_top_n: [N_background] bool, the table top (replaced by the appearance edit).
    links_lm: [L, M] link Gaussians of the source robot (the Panda), each row in its link frame.
    link_ids: [L] rows of `forward_kinematics` output for each link row.
    objects: name -> ObjectPart.
    report: how the reconstruction went (PSNRs, views, coverage).
    other_robots: embodiment name -> (links_lm, link_ids) of the replacement robots.
  """

  background: Gaussians
  table_top_n: np.ndarray
  links_lm: Gaussians
  link_ids: np.ndarray
  objects: dict[str, ObjectPart]
  report: dict[str, Any]
  other_robots: dict[str, tuple[Gaussians, np.ndarray]] = dataclasses.field(default_factory=dict)

  @property
  def embodiments(self) -> tuple[str, ...]:
    return ("panda", *self.other_robots)

  def robot_links(self, embodiment: str = "panda") -> tuple[Gaussians, np.ndarray]:
    """(links_lm, link_ids) of one embodiment."""
    if embodiment == "panda":
      return self.links_lm, self.link_ids
    if embodiment not in self.other_robots:
      raise ValueError(f"embodiment {embodiment!r} has no Gaussians in the scene parts; it has {list(self.embodiments)} "
                       "(build them with build_scene_parts(embodiments=...))")
    return self.other_robots[embodiment]


def _jaxlab_cameras(cameras: list[CameraSpec]) -> Camera:
  return stack_cameras([c.to_jaxlab() for c in cameras])


def capture_cameras(settings: AssetSettings) -> list[CameraSpec]:
  """Orbit views on two rings plus the two policy cameras, at the capture resolution."""
  w = settings.capture_width
  ring = orbit_cameras(settings.num_views, 0.9, heights=(0.35, 0.75), width=w)
  return ring + [FRONT.resized(w), SIDE.resized(w)]


# ----------------------------------------------------------------------------- background


def backprojected_gaussians(captures: list[dict[str, Any]], count: int, rng: np.random.Generator) -> Gaussians:
  """Coloured discs at the captures' depth points (subsampled to `count`), facing their camera.

  A pixel's disc is as wide as the pixel's footprint at its depth times the subsampling
  stride, so the discs tile the surfaces the views saw.
  """
  points, normals, colors, widths = [], [], [], []
  for capture in captures:
    camera: CameraSpec = capture["camera"]
    depth_hw = capture["depth"].astype(np.float64)
    h, w = depth_hw.shape
    rows, cols = np.mgrid[0:h, 0:w]
    f = camera.focal
    rays_hw3 = np.stack([(cols + 0.5 - 0.5 * w) / f, (rows + 0.5 - 0.5 * h) / f, np.ones((h, w))], -1)
    points_hw3 = (depth_hw[..., None] * rays_hw3) @ camera.c2w_44[:3, :3].T + camera.c2w_44[:3, 3]
    # Normals from the point map's neighbours, turned toward the camera.
    du, dv = np.gradient(points_hw3, axis=1), np.gradient(points_hw3, axis=0)
    normal_hw3 = np.cross(du, dv)
    normal_hw3 /= np.maximum(np.linalg.norm(normal_hw3, axis=-1, keepdims=True), 1e-12)
    to_camera = camera.eye - points_hw3
    normal_hw3 *= np.where(np.sum(normal_hw3 * to_camera, -1, keepdims=True) < 0, -1.0, 1.0)
    valid = capture["body"] >= 0
    points.append(points_hw3[valid])
    normals.append(normal_hw3[valid])
    colors.append(capture["rgb"][valid].astype(np.float64) / 255.0)
    widths.append(depth_hw[valid] / f)
  points, normals, colors, widths = (np.concatenate(a) for a in (points, normals, colors, widths))
  if len(points) == 0:
    raise ValueError("the background captures hold no depth: every pixel is empty")
  keep = rng.choice(len(points), size=min(count, len(points)), replace=False)
  stride = math.sqrt(len(points) / len(keep))
  g = surface_gaussians(points[keep], normals[keep], colors[keep], spacing=1.0, opacity=0.9)
  log_width = np.log(0.6 * stride * widths[keep])
  log_scales = np.stack([log_width, log_width, log_width + np.log(0.25)], -1)
  return g.replace(log_scales=jnp.asarray(log_scales, jnp.float32))


def table_top_mask(background: Gaussians, spec: TabletopSpec) -> np.ndarray:
  """[N] bool: active Gaussians lying on the table top, off the tray's footprint."""
  means = np.asarray(background.means)
  on_top = np.abs(means[:, 2]) < _TABLE_TOP_BAND
  table = (np.abs(means[:, 0] - spec.table_xy[0]) < 0.75) & (np.abs(means[:, 1] - spec.table_xy[1]) < 0.5)
  tray = ((np.abs(means[:, 0] - spec.tray_xy[0]) < spec.tray_half_size + 0.01)
          & (np.abs(means[:, 1] - spec.tray_xy[1]) < spec.tray_half_size + 0.01))
  return on_top & table & ~tray & np.asarray(background.active)


# ----------------------------------------------------------------------------- rigid parts


def _part_gaussians(samples: meshes.SurfaceSamples, world_from_part_44: np.ndarray, captures: list[dict[str, Any]],
                    cameras: Camera, mask_vhw: np.ndarray, area: float, what: str) -> tuple[Gaussians, float]:
  """Gaussians of one rigid part in its own frame, coloured from the masked captures."""
  world_points = samples.points_p3 @ world_from_part_44[:3, :3].T + world_from_part_44[:3, 3]
  try:
    colored = color_from_views(world_points, cameras, np.stack([c["rgb"] for c in captures]),
                               np.stack([c["depth"] for c in captures]), mask_vhw, fallback_rgb_p3=samples.colors_p3)
  except ValueError as error:
    raise ValueError(f"{what}: {error}") from None
  spacing = sample_spacing(area, len(samples.points_p3))
  return surface_gaussians(samples.points_p3, samples.normals_p3, colored.colors_p3, spacing=spacing), \
      colored.seen_fraction


def _mesh_area(model: urdf.RobotModel, link: str) -> float:
  area = 0.0
  for visual in model.link(link).visuals:
    if visual.geometry == "mesh":
      mesh = meshes.load_mesh(visual.mesh_path, visual.scale_3)
      area += float(meshes.face_areas(mesh.vertices_v3, mesh.faces_f3).sum())
    else:
      area += meshes._primitive_area(visual)  # noqa: SLF001 (same unit)
  return max(area, 1e-6)


def object_model(name: str) -> tuple[urdf.RobotModel, float]:
  """A one-link URDF model of an `OBJECTS` asset and the scale pybullet applies to it."""
  import pybullet_data  # noqa: PLC0415 (the robot extra)

  asset = OBJECTS[name]
  data = pybullet_data.getDataPath()
  if asset.kind == "urdf":
    return urdf.load_urdf(os.path.join(data, asset.source)), asset.scale
  rgba = "1 1 1 1" if asset.rgba is None else " ".join(str(v) for v in asset.rgba)
  if asset.kind == "mesh":
    s = asset.scale
    geometry = f'<mesh filename="{asset.source}" scale="{s} {s} {s}"/>'
  elif asset.kind == "cylinder":
    geometry = f'<cylinder radius="{asset.size[0]}" length="{asset.size[1]}"/>'
  elif asset.kind == "box":
    geometry = '<box size="{} {} {}"/>'.format(*(2 * v for v in asset.size))
  else:
    raise ValueError(f"object {name!r}: unknown kind {asset.kind!r}")
  text = (f'<robot name="{name}"><link name="body"><visual><geometry>{geometry}</geometry>'
          f'<material name="m"><color rgba="{rgba}"/></material></visual></link></robot>')
  return urdf.parse_urdf(text, data, source=f"object {name!r}"), 1.0


def build_robot_links(world: World, cameras_spec: list[CameraSpec], settings: AssetSettings,
                      rng: np.random.Generator) -> tuple[Gaussians, np.ndarray, dict[str, float]]:
  """[L, M] link Gaussians (link frames) of the world's robot (`world.embodiment`), their FK rows
  and the fraction of samples each view set saw."""
  model = world.embodiment.model()
  captures, link_poses = [], []
  for qpos in robot_capture_qpos(world.embodiment):
    world.set_arm(qpos)
    captures.append(capture_views(world, cameras_spec, oversample=settings.oversample, keep={world.robot}))
    link_poses.append(np.asarray(kinematics.forward_kinematics(model, jnp.asarray(qpos, jnp.float32)), np.float64))
  world.set_arm(world.embodiment.init_qpos_9)
  cameras = _jaxlab_cameras(cameras_spec)
  parts, ids, seen = [], [], {}
  for index, link in enumerate(model.links):
    if not link.visuals:
      continue
    samples = meshes.visual_samples(model, link.name, settings.points_per_link, rng)
    area = _mesh_area(model, link.name)
    sim_index = world.link_index.get(link.name)
    colors_sum, seen_sum, gaussians = None, 0.0, None
    # Colour from each configuration's captures; average the colours where several saw it.
    for captures_q, poses in zip(captures, link_poses):
      mask = masks_for(captures_q, world.robot, sim_index)
      if not mask.any():
        continue
      g, fraction = _part_gaussians(samples, poses[index], captures_q, cameras, mask, area, f"link {link.name!r}")
      colors_sum = g.sh[:, 0] if colors_sum is None else colors_sum + g.sh[:, 0]
      seen_sum, gaussians = max(seen_sum, fraction), g
    if gaussians is None:
      raise ValueError(f"link {link.name!r}: its segmentation mask is empty in every capture")
    count = sum(bool(masks_for(c, world.robot, sim_index).any()) for c in captures)
    parts.append(gaussians.replace(sh=gaussians.sh.at[:, 0].set(colors_sum / count)))
    ids.append(index)
    seen[link.name] = seen_sum
  return stack_links(parts), np.asarray(ids, np.int32), seen


def build_object(world: World, name: str, cameras_spec: list[CameraSpec], settings: AssetSettings,
                 rng: np.random.Generator) -> tuple[ObjectPart, float]:
  """One object's Gaussians and placement, from captures of it alone at the source position."""
  world.reset(name, world.spec.object_xy_yaw, INIT_QPOS)
  yaw = world.spec.object_xy_yaw[2]
  pose = world.object_pose()
  center = world.object_center()
  # Rest pose at the origin: undo the placement (x, y, yaw) of the source position.
  c, s = math.cos(yaw), math.sin(yaw)
  place = np.array([[c, -s, 0, center[0]], [s, c, 0, center[1]], [0, 0, 1, 0], [0, 0, 0, 1.0]])
  rest = np.linalg.inv(place) @ pose
  center_local = np.linalg.inv(pose)[:3, :3] @ (center - pose[:3, 3])
  model, scale = object_model(name)
  samples = meshes.visual_samples(model, model.root, settings.points_per_object, rng)
  samples = samples._replace(points_p3=samples.points_p3 * scale)
  area = _mesh_area(model, model.root) * scale ** 2
  captures = capture_views(world, cameras_spec, oversample=settings.oversample, keep={world.object})
  mask = masks_for(captures, world.object)
  g, seen = _part_gaussians(samples, pose, captures, _jaxlab_cameras(cameras_spec), mask, area, f"object {name!r}")
  return ObjectPart(g, rest, center_local, OBJECTS[name].grasp_height), seen


def build_scene_parts(spec: TabletopSpec | None = None, settings: AssetSettings | None = None,
                      object_names: tuple[str, ...] | None = None,
                      embodiments: tuple[str, ...] = ("panda",)) -> SceneParts:
  """Captures the simulated tabletop and reconstructs its Gaussian parts (module doc).

  `embodiments` other than the Panda (the source robot, always built) get their links too,
  photographed the same way in a world holding that robot (embodiment replacement).
  """
  for name in embodiments:
    get_embodiment(name)  # an unknown name fails before any capture
  spec = spec or TabletopSpec()
  settings = settings or AssetSettings()
  object_names = tuple(OBJECTS) if object_names is None else tuple(object_names)
  unknown = [n for n in object_names if n not in OBJECTS]
  if unknown:
    raise ValueError(f"unknown object(s) {unknown}; choose from {sorted(OBJECTS)}")
  rng = np.random.default_rng(settings.seed)
  cameras_spec = capture_cameras(settings)
  cameras = _jaxlab_cameras(cameras_spec)
  report: dict[str, Any] = {"views": len(cameras_spec), "capture_width": settings.capture_width}
  with World(spec) as world:
    world.reset("cube", spec.object_xy_yaw, INIT_QPOS)
    keep = {b for b in (world.table, world.tray, world.floor) if b is not None and b >= 0}
    background_captures = capture_views(world, cameras_spec, oversample=settings.oversample, keep=keep)
    initial = backprojected_gaussians(background_captures, settings.background_points, rng)
    if settings.fit_steps > 0:
      fit = fit_background(initial, cameras, np.stack([c["rgb"] for c in background_captures]),
                           num_steps=settings.fit_steps, seed=settings.seed)
      background = jax.tree.map(jnp.asarray, fit.gaussians)
      report.update(background_initial_psnr=fit.initial_psnr, background_psnr=fit.train_psnr)
    else:
      background = initial
    links_lm, link_ids, link_seen = build_robot_links(world, cameras_spec, settings, rng)
    report["link_seen_fraction"] = link_seen
    objects, object_seen = {}, {}
    for name in object_names:
      objects[name], object_seen[name] = build_object(world, name, cameras_spec, settings, rng)
    report["object_seen_fraction"] = object_seen
    other_robots = {}
    for name in dict.fromkeys(embodiments):
      if name == "panda":
        continue
      world.reset("cube", spec.object_xy_yaw, embodiment=name)
      links, ids, seen = build_robot_links(world, cameras_spec, settings, rng)
      other_robots[name] = (links, ids)
      report[f"link_seen_fraction/{name}"] = seen
    world.reset("cube", spec.object_xy_yaw, embodiment="panda")
  table_top = table_top_mask(background, spec)
  report.update(background_gaussians=int(background.num), table_top_gaussians=int(table_top.sum()),
                link_rows=int(links_lm.means.shape[0]), link_slots=int(links_lm.means.shape[1]))
  log.info("scene parts: %s", report)
  return SceneParts(background, table_top, links_lm, link_ids, objects, report, other_robots)





# ----------------------------------------------------------------------------- save and load

_GAUSSIAN_FIELDS = ("means", "log_scales", "quats", "opacity_logits", "sh", "active")


def save_scene_parts(path: str | os.PathLike, parts: SceneParts) -> None:
  """Writes the parts as one .npz (temporary name, then renamed); `load_scene_parts` reads it."""
  arrays: dict[str, np.ndarray] = {"table_top_n": parts.table_top_n, "link_ids": parts.link_ids}
  named = {"background": parts.background, "links_lm": parts.links_lm}
  for name, (links, ids) in parts.other_robots.items():
    named[f"robot/{name}/links_lm"] = links
    arrays[f"robot/{name}/link_ids"] = np.asarray(ids)
  for name, part in parts.objects.items():
    named[f"object/{name}"] = part.gaussians
    arrays[f"object/{name}/rest_pose_44"] = part.rest_pose_44
    arrays[f"object/{name}/center_local_3"] = part.center_local_3
    arrays[f"object/{name}/grasp_height"] = np.float64(part.grasp_height)
  for prefix, g in named.items():
    for field in _GAUSSIAN_FIELDS:
      arrays[f"{prefix}/{field}"] = np.asarray(getattr(g, field))
  arrays["report_json"] = np.frombuffer(json.dumps(parts.report, default=float).encode(), np.uint8)
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  files.write_bytes(path, buffer.getvalue())


def load_scene_parts(path: str | os.PathLike) -> SceneParts:
  """The parts `save_scene_parts` wrote; a damaged or foreign file is an error naming it."""
  try:
    with np.load(path) as data:
      arrays = {k: data[k] for k in data.files}
    gaussians = lambda prefix: Gaussians(**{f: jnp.asarray(arrays[f"{prefix}/{f}"]) for f in _GAUSSIAN_FIELDS})
    names = sorted({k.split("/")[1] for k in arrays if k.startswith("object/")})
    objects = {n: ObjectPart(gaussians(f"object/{n}"), arrays[f"object/{n}/rest_pose_44"],
                             arrays[f"object/{n}/center_local_3"], float(arrays[f"object/{n}/grasp_height"]))
               for n in names}
    robots = sorted({k.split("/")[1] for k in arrays if k.startswith("robot/")})
    other_robots = {n: (gaussians(f"robot/{n}/links_lm"), arrays[f"robot/{n}/link_ids"]) for n in robots}
    return SceneParts(gaussians("background"), arrays["table_top_n"], gaussians("links_lm"), arrays["link_ids"],
                      objects, json.loads(arrays["report_json"].tobytes()), other_robots)
  except (OSError, KeyError, ValueError) as error:
    raise ValueError(f"{path} is not a scene-parts file written by save_scene_parts: {error}") from None

"""Demonstration generation: one source demonstration and a Gaussian scene in, episodes out.

For each new demonstration: pick an object position on the spec's grid (x ∈ x0 +
linspace(−0.06, 0.24), y ∈ y0 + linspace(−0.22, 0.18)) with a random yaw, an object type and
a robot (embodiment), plan that robot's motion through the transformed end-effector
keyframes (`plan_demo`), render both cameras for every frame with the edits
(`DemoRenderer`), and append the episode to a LeRobot-layout dataset (`EpisodeWriter`).
Plans that leave the robot's reach are skipped and counted, never written.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from jaxlab.robosplat.demo_plan import PlannedDemo, SourceTrajectory, plan_demo
from jaxlab.robosplat.demo_render import DemoRenderer, EditSettings, RenderCamera
from jaxlab.robosplat.embodiments import get_embodiment
from jaxlab.robosplat.episodes import EpisodeWriter
from jaxlab.robosplat.sim.closed_loop import GRID_X, GRID_Y, grid_xy  # the spec's grid
from jaxlab.robosplat.sim_assets import SceneParts

log = logging.getLogger(__name__)

STATE_NAMES = tuple(f"joint{i}" for i in range(7)) + ("gripper_width",)
ACTION_NAMES = tuple(f"joint{i}_target" for i in range(7)) + ("gripper_command",)
TASK = "pick up the object and place it in the tray"


@dataclasses.dataclass(frozen=True)
class GenerateSettings:
  """What to generate.

  Attributes:
    num_demos: demonstrations to attempt (grid positions are visited in order, repeating
      with fresh yaws and edits).
    grid: (n_x, n_y) of the position grid.
    grid_x, grid_y: (low, high) offsets of the grid from the source object position (m).
    random_yaw: draw the object yaw from U(−π, π) (else the source's).
    object_names: object types to cycle through (object-type replacement); the source
      object first.
    embodiments: robots to cycle through (embodiment replacement, `jaxlab.robosplat.
      embodiments`); demonstration i uses object i mod #objects and robot
      (i // #objects) mod #robots, so every object meets every robot.
    edits: lighting, appearance and camera edits.
    seed: yaws, object order and edits.
  """

  num_demos: int = 100
  grid: tuple[int, int] = (10, 10)
  grid_x: tuple[float, float] = GRID_X
  grid_y: tuple[float, float] = GRID_Y
  random_yaw: bool = True
  object_names: tuple[str, ...] = ("cube",)
  embodiments: tuple[str, ...] = ("panda",)
  edits: EditSettings = EditSettings()
  seed: int = 0

  def __post_init__(self):
    if self.num_demos < 1 or min(self.grid) < 1:
      raise ValueError(f"num_demos and grid must be >= 1; got {self.num_demos}, {self.grid}")
    if not self.object_names:
      raise ValueError("object_names is empty")
    if not self.embodiments:
      raise ValueError("embodiments is empty")
    for name in self.embodiments:
      get_embodiment(name)


@dataclasses.dataclass
class GenerationReport:
  """Counts and speed of a generation run."""

  written: int = 0
  skipped_unreachable: int = 0
  skipped_reasons: list[str] = dataclasses.field(default_factory=list)
  frames_rendered: int = 0
  render_seconds: float = 0.0
  total_seconds: float = 0.0

  @property
  def frames_per_second(self) -> float:
    return self.frames_rendered / self.render_seconds if self.render_seconds else 0.0

  def as_dict(self) -> dict[str, Any]:
    return {**dataclasses.asdict(self), "frames_per_second": self.frames_per_second}


def plan_for_object(source: SourceTrajectory, parts: SceneParts, source_object: str, object_name: str,
                    xy_yaw: Sequence[float], model=None, *, embodiment: str = "panda") -> PlannedDemo:
  """`plan_demo` for `object_name` at (x, y, yaw) on `embodiment`: grasp height and tray drop
  from the object's part, motion by that robot's inverse kinematics from its home."""
  if object_name not in parts.objects:
    raise ValueError(f"object {object_name!r} has no Gaussians in the scene parts; it has {sorted(parts.objects)}")
  robot = get_embodiment(embodiment)
  part, source_part = parts.objects[object_name], parts.objects[source_object]
  model = model or robot.model()
  final_z = source.object_pose_t44[-1][2, 3] - source_part.rest_pose_44[2, 3] + part.rest_pose_44[2, 3]
  return plan_demo(source, model, xy_yaw, object_start_pose_44=part.pose_at(*xy_yaw),
                   grasp_height_offset=part.grasp_height - source_part.grasp_height, tray_floor_pose_z=final_z,
                   init_qpos_9=robot.init_qpos_9)


def make_renderer(parts: SceneParts, cameras, edits: EditSettings, table_xy: Sequence[float], *,
                  implementation: str | None = None, embodiment: str = "panda") -> DemoRenderer:
  """The demonstration renderer of `parts` with `embodiment`'s links for `cameras` (simulator `CameraSpec`s)."""
  links_lm, link_ids = parts.robot_links(embodiment)
  return DemoRenderer(parts.background, parts.table_top_n, links_lm, link_ids, get_embodiment(embodiment).model(),
                      [RenderCamera.from_spec(c) for c in cameras], edits, table_xy, implementation=implementation)


def generate_demos(writer: EpisodeWriter, source_demo, parts: SceneParts, cameras, settings: GenerateSettings, *,
                   stop_requested: Callable[[], bool] = lambda: False) -> GenerationReport:
  """Generates `settings.num_demos` attempts into `writer` (see the module doc).

  Args:
    writer: an open `EpisodeWriter` whose cameras are `cameras`' names and sizes.
    source_demo: the `SourceDemo` recorded in the simulator.
    parts: the reconstructed scene.
    cameras: the simulator cameras of the demonstrations (FRONT, SIDE at the policy's size).
    settings: what to generate.
    stop_requested: polled between demonstrations (a preempted job stops cleanly; every
      written episode is complete).
  """
  start = time.perf_counter()
  source = SourceTrajectory.from_demo(source_demo)
  for name in settings.embodiments:
    parts.robot_links(name)  # every robot has Gaussians before anything is written
  renderers: dict[str, DemoRenderer] = {}
  positions = grid_xy(size=settings.grid, offsets_x=settings.grid_x, offsets_y=settings.grid_y,
                      center_xy=source.object_xy_yaw[:2])
  rng = np.random.default_rng(settings.seed)
  key = jax.random.key(settings.seed)
  report = GenerationReport()
  for i in range(settings.num_demos):
    if stop_requested():
      log.info("generation stopped after %d attempts", i)
      break
    x, y = positions[i % len(positions)]
    yaw = float(rng.uniform(-np.pi, np.pi)) if settings.random_yaw else float(source.object_xy_yaw[2])
    object_name = settings.object_names[i % len(settings.object_names)]
    embodiment = settings.embodiments[(i // len(settings.object_names)) % len(settings.embodiments)]
    plan = plan_for_object(source, parts, source_demo.object_name, object_name, (x, y, yaw), embodiment=embodiment)
    if not plan.ok:
      report.skipped_unreachable += 1
      report.skipped_reasons.append(
          f"demo {i} ({object_name} at x={x:.3f} y={y:.3f} yaw={yaw:.2f}, {embodiment}): {plan.reason}")
      log.warning("skipping %s", report.skipped_reasons[-1])
      continue
    if embodiment not in renderers:
      renderers[embodiment] = make_renderer(parts, cameras, settings.edits, source_demo.spec.table_xy,
                                            embodiment=embodiment)
    t0 = time.perf_counter()
    images = renderers[embodiment](plan.qpos_t9, plan.object_pose_t44, parts.objects[object_name].gaussians,
                      jax.random.fold_in(key, i))
    report.render_seconds += time.perf_counter() - t0
    report.frames_rendered += len(plan.state_t8) * len(cameras)
    writer.add_episode(images, plan.state_t8, plan.action_t8, TASK, metadata={
        "source": "generated", "attempt": i, "object_name": object_name, "embodiment": embodiment,
        "object_xy_yaw": [float(x), float(y), yaw],
        "edits": {"lighting": settings.edits.lighting, "texture": settings.edits.texture,
                  "camera_jitter": settings.edits.camera_jitter, "per_episode": settings.edits.per_episode},
    })
    report.written += 1
  report.total_seconds = time.perf_counter() - start
  return report


def write_source_episode(writer: EpisodeWriter, source_demo, images: dict[str, np.ndarray]) -> int:
  """Appends the source demonstration itself (its simulator images) as an episode."""
  return writer.add_episode(images, source_demo.state_t8, source_demo.action_t8, TASK, metadata={
      "source": "teleoperated", "object_name": source_demo.object_name, "embodiment": "panda",
      "object_xy_yaw": [float(v) for v in source_demo.object_xy_yaw]})


def open_writer(root, cameras, *, fps: float, resume: bool = False,
                embodiments: Sequence[str] = ("panda",)) -> EpisodeWriter:
  """An `EpisodeWriter` for demonstrations of `cameras` with jaxlab's state and action names.

  `robot_type` in info.json names the robots ("+"-joined when several); each episode's
  metadata names its own."""
  robot_type = "+".join(get_embodiment(name).robot_type for name in embodiments)
  return EpisodeWriter(root, fps=fps, robot_type=robot_type, cameras={c.name: (c.height, c.width) for c in cameras},
                       state_names=list(STATE_NAMES), action_names=list(ACTION_NAMES), resume=resume)

"""Closed-loop checks of a visuomotor policy in the simulator, along RoboSplat's axes.

A `Variation` changes one thing about the source setup: the object's pose (held-out poses,
off the generation grid), the object's type, the cameras (jittered about their look-at
point in spherical coordinates, the spec's ranges), the lighting, the table's texture
(scikit-image's bundled photographs), or the robot (another embodiment). `run_episode` renders the policy cameras every step,
asks the policy for an action and steps the world until the object lands in the tray or
the step budget runs out.

The policy is `policy_fn(images, state_8) -> action_8` with `images` mapping camera name to
uint8 [H, W, 3]; a policy with a `reset()` method (e.g. one that queues action chunks) has
it called at the start of every episode.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxlab.robosplat.sim.cameras import FRONT, SIDE, CameraSpec, default_cameras, render
from jaxlab.robosplat.embodiments import EMBODIMENTS
from jaxlab.robosplat.sim.world import OBJECTS, Light, TabletopSpec, World
from jaxlab.splat import edit
from jaxlab.splat.edit import SphericalJitter

AXES = ("nominal", "object_pose", "object_type", "camera", "lighting", "table_texture", "embodiment")
# The spec's generation grid: offsets from the source object position.
GRID_X = (-0.06, 0.24)
GRID_Y = (-0.22, 0.18)
GRID_SIZE = (10, 10)
# scikit-image photographs (no download) for the table; demonstration generation paints with
# the other `PHOTO_TEXTURE_NAMES`, so these stay unseen in training.
TEXTURE_NAMES = ("brick", "coffee", "gravel", "rocket", "chelsea")
SOURCE_OBJECT = "cube"
SOURCE_EMBODIMENT = "panda"
LOOK_AT_HEIGHT = 0.06  # a camera orbits the point where its axis meets this plane

PolicyFn = Callable[[Mapping[str, np.ndarray], np.ndarray], Any]


@dataclasses.dataclass(frozen=True, eq=False)
class Variation:
  """One closed-loop test setup (None fields: the source setup's).

  Attributes:
    axis: which axis it varies (one of AXES), a label for the report.
    object_name: a key of `OBJECTS`.
    object_xy_yaw: the object's start (centre x, y, yaw); None: the spec's source pose.
    cameras: the policy cameras; None: `default_cameras` at the episode's resolution.
    light: None: the default `Light()`.
    table_texture: a `TEXTURE_NAMES` entry; None: the table's own texture.
    embodiment: the robot (a key of `jaxlab.robosplat.embodiments.EMBODIMENTS`).
  """

  axis: str = "nominal"
  object_name: str = SOURCE_OBJECT
  object_xy_yaw: tuple[float, float, float] | None = None
  cameras: tuple[CameraSpec, ...] | None = None
  light: Light | None = None
  table_texture: str | None = None
  embodiment: str = SOURCE_EMBODIMENT


@dataclasses.dataclass(frozen=True)
class EpisodeResult:
  """Outcome of one closed-loop episode."""

  success: bool
  steps: int
  variation: Variation
  final_object_center: np.ndarray
  final_state: np.ndarray


def grid_xy(spec: TabletopSpec | None = None, *, size: Sequence[int] = GRID_SIZE, offsets_x: Sequence[float] = GRID_X,
            offsets_y: Sequence[float] = GRID_Y, center_xy: Sequence[float] | None = None) -> np.ndarray:
  """[n_x * n_y, 2] object positions of the generation grid (the spec's 10x10 by default) about
  `center_xy` (default: the spec's source object position)."""
  spec = spec or TabletopSpec()
  center = spec.object_xy_yaw[:2] if center_xy is None else center_xy
  xs = center[0] + np.linspace(*offsets_x, size[0])
  ys = center[1] + np.linspace(*offsets_y, size[1])
  return np.stack(np.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)


def held_out_xy(rng: np.random.Generator, spec: TabletopSpec | None = None, *, margin: float = 0.25) -> np.ndarray:
  """A random position inside the grid's range but off its points.

  Rejected when within `margin` grid spacings of a grid point along both x and y.
  """
  spec = spec or TabletopSpec()
  grid = grid_xy(spec)
  spacing = np.array([(GRID_X[1] - GRID_X[0]) / (GRID_SIZE[0] - 1), (GRID_Y[1] - GRID_Y[0]) / (GRID_SIZE[1] - 1)])
  low = np.array(spec.object_xy_yaw[:2]) + np.array([GRID_X[0], GRID_Y[0]])
  high = np.array(spec.object_xy_yaw[:2]) + np.array([GRID_X[1], GRID_Y[1]])
  while True:
    xy = rng.uniform(low, high)
    if not np.any(np.all(np.abs(grid - xy) < margin * spacing, axis=1)):
      return xy


def camera_look_at(camera: CameraSpec, height: float = LOOK_AT_HEIGHT) -> np.ndarray:
  """Where the optical axis meets the plane z = `height` (the table's working height)."""
  forward = camera.c2w_44[:3, 2]
  eye = camera.eye
  if forward[2] > -1e-3:
    raise ValueError(f"camera {camera.name!r} does not look down at the table; cannot jitter it about a look-at point")
  return eye + forward * (height - eye[2]) / forward[2]


def jitter_camera(camera: CameraSpec, rng: np.random.Generator, ranges: SphericalJitter) -> CameraSpec:
  """The camera moved on a sphere about its look-at point (`jaxlab.splat.edit.jitter_camera`)."""
  key = jax.random.key(int(rng.integers(2**31)))
  c2w = np.asarray(edit.jitter_camera(camera.c2w_44, camera_look_at(camera), ranges, key), np.float64)
  # Re-orthonormalise the float32 rotation so the simulator's camera check holds.
  u, _, vt = np.linalg.svd(c2w[:3, :3])
  c2w[:3, :3] = u @ vt
  return dataclasses.replace(camera, c2w_44=c2w)


def table_texture_image(name: str, size: int = 256) -> np.ndarray:
  """A scikit-image photograph as uint8 [size, size, 3] (grey ones repeated over RGB)."""
  if name not in TEXTURE_NAMES:
    raise ValueError(f"unknown table texture {name!r}; choose one of {TEXTURE_NAMES}")
  import skimage.transform  # noqa: PLC0415

  image = edit.photo_textures([name])[name]
  resized = skimage.transform.resize(image, (size, size), anti_aliasing=True, preserve_range=True)
  return np.clip(np.round(resized), 0, 255).astype(np.uint8)


def random_light(rng: np.random.Generator) -> Light:
  """A light from a random direction above the table, tinted, with varied ambient / diffuse."""
  elevation = rng.uniform(math.radians(25), math.radians(80))
  azimuth = rng.uniform(0.0, 2.0 * math.pi)
  direction = (math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation))
  color = tuple(float(c) for c in rng.uniform(0.6, 1.0, 3))
  return Light(direction, color, ambient=float(rng.uniform(0.3, 0.8)), diffuse=float(rng.uniform(0.2, 0.7)))


def sample_variations(axis: str, count: int, seed: int = 0, *, spec: TabletopSpec | None = None,
                      cameras: Sequence[CameraSpec] | None = None) -> list[Variation]:
  """`count` test setups varying `axis` (one of AXES), reproducible from `seed`.

  - "nominal": the source setup (repeated).
  - "object_pose": the source object at held-out positions (`held_out_xy`), yaw ~ U(-π, π).
  - "object_type": the other objects (cycling through them) at the source pose; after one
    of each, at held-out poses.
  - "camera": `cameras` (default FRONT, SIDE) jittered, front with CAMERA_0_JITTER, the
    others with CAMERA_1_JITTER (the spec's two ranges).
  - "lighting": `random_light`.
  - "table_texture": cycling through TEXTURE_NAMES from a seeded start.
  - "embodiment": the other robots (cycling) with the source object, the first three at
    the source pose, then at held-out poses.
  """
  if axis not in AXES:
    raise ValueError(f"unknown variation axis {axis!r}; choose one of {AXES}")
  if count < 0:
    raise ValueError(f"count must be >= 0; got {count}")
  spec = spec or TabletopSpec()
  rng = np.random.default_rng(seed)
  out = []
  others = [name for name in OBJECTS if name != SOURCE_OBJECT]
  other_robots = [name for name in EMBODIMENTS if name != SOURCE_EMBODIMENT]
  base_cameras = list(cameras) if cameras is not None else [FRONT, SIDE]
  start = int(rng.integers(len(TEXTURE_NAMES)))
  for i in range(count):
    if axis == "nominal":
      out.append(Variation(axis))
    elif axis == "object_pose":
      xy = held_out_xy(rng, spec)
      out.append(Variation(axis, object_xy_yaw=(float(xy[0]), float(xy[1]), float(rng.uniform(-math.pi, math.pi)))))
    elif axis == "object_type":
      if i < len(others):
        pose = None
      else:
        xy = held_out_xy(rng, spec)
        pose = (float(xy[0]), float(xy[1]), float(rng.uniform(-math.pi, math.pi)))
      out.append(Variation(axis, object_name=others[i % len(others)], object_xy_yaw=pose))
    elif axis == "camera":
      jittered = tuple(jitter_camera(c, rng, edit.CAMERA_0_JITTER if k == 0 else edit.CAMERA_1_JITTER)
                       for k, c in enumerate(base_cameras))
      out.append(Variation(axis, cameras=jittered))
    elif axis == "lighting":
      out.append(Variation(axis, light=random_light(rng)))
    elif axis == "embodiment":
      pose = None
      if i >= 3:
        xy = held_out_xy(rng, spec)
        pose = (float(xy[0]), float(xy[1]), float(rng.uniform(-math.pi, math.pi)))
      out.append(Variation(axis, object_xy_yaw=pose, embodiment=other_robots[i % len(other_robots)]))
    else:
      out.append(Variation(axis, table_texture=TEXTURE_NAMES[(start + i) % len(TEXTURE_NAMES)]))
  return out


def _episode_cameras(variation: Variation, cameras: Sequence[CameraSpec] | None, width: int) -> list[CameraSpec]:
  base = list(cameras) if cameras is not None else default_cameras(width)
  if variation.cameras is None:
    return base
  # Replacement cameras keep the episode's names and resolution (the policy's inputs).
  return [c.resized(b.width, b.height).renamed(b.name) for c, b in zip(variation.cameras, base)]


def run_episode(policy_fn: PolicyFn, variation: Variation | None = None, *, max_steps: int = 100,
                cameras: Sequence[CameraSpec] | None = None, spec: TabletopSpec | None = None,
                world: World | None = None, width: int = 64, settle_steps: int = 22) -> EpisodeResult:
  """Runs the policy closed-loop on one setup.

  Args:
    policy_fn: (images by camera name, 8-D state) -> 8-D action; its `reset()` is called
      first when it has one.
    variation: the setup (None: nominal).
    max_steps: control steps before giving up.
    cameras: the policy cameras (names are the image keys); None: `default_cameras(width)`.
      A camera variation replaces their poses, keeping names and resolution.
    spec: the world layout (ignored when `world` is given).
    world: reuse this world (it is reset); None: a fresh one, closed afterwards.
    width: image size of the default cameras.
    settle_steps: physics after the episode before the final success check.
  """
  variation = variation or Variation()
  if variation.object_name not in OBJECTS:
    raise ValueError(f"variation object {variation.object_name!r} is not one of {sorted(OBJECTS)}")
  own = world is None
  world = World(spec) if own else world
  try:
    world.set_table_texture(None if variation.table_texture is None else table_texture_image(variation.table_texture))
    world.reset(variation.object_name, variation.object_xy_yaw, embodiment=variation.embodiment)
    light = variation.light or Light()
    world.set_light(light.direction_3, light.color_3, light.ambient, light.diffuse, specular=light.specular,
                    shadow=light.shadow)
    episode_cameras = _episode_cameras(variation, cameras, width)
    if hasattr(policy_fn, "reset"):
      policy_fn.reset()
    steps, success = 0, False
    for steps in range(1, max_steps + 1):
      images = {camera.name: render(world, camera).rgb_hw3 for camera in episode_cameras}
      action = np.asarray(policy_fn(images, world.state()), np.float64).reshape(-1)
      if action.shape != (8,):
        raise ValueError(f"policy_fn must return an 8-D action; got shape {action.shape} at step {steps - 1}")
      world.step(action)
      if world.success():
        break
    world.settle(settle_steps)
    success = world.success()
    return EpisodeResult(success, steps, variation, world.object_center(), world.state())
  finally:
    if own:
      world.close()


def evaluate(policy_fn: PolicyFn, variations: Sequence[Variation], *, max_steps: int = 100,
             cameras: Sequence[CameraSpec] | None = None, spec: TabletopSpec | None = None,
             width: int = 64) -> dict[str, Any]:
  """Success rate of the policy over the setups (one world, reset per episode).

  Returns:
    {"success_rate", "num_episodes", "successes" (list of bool), "steps" (list of int),
     "by_axis" ({axis: success rate})}.
  """
  if not variations:
    raise ValueError("evaluate got no variations")
  results = []
  with World(spec) as world:
    for variation in variations:
      results.append(run_episode(policy_fn, variation, max_steps=max_steps, cameras=cameras, world=world,
                                 width=width))
  successes = [r.success for r in results]
  by_axis: dict[str, list[bool]] = {}
  for r in results:
    by_axis.setdefault(r.variation.axis, []).append(r.success)
  return {
      "success_rate": float(np.mean(successes)),
      "num_episodes": len(results),
      "successes": successes,
      "steps": [r.steps for r in results],
      "by_axis": {axis: float(np.mean(v)) for axis, v in by_axis.items()},
  }

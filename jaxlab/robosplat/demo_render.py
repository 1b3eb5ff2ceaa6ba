"""Rendering a demonstration: every frame of both cameras in one jitted, vmapped call.

A frame is the scene parts posed for that step (links by forward kinematics of the joint
positions, the object by its pose), then edited:

- appearance: the table top swapped for a plane textured with a random photograph;
- lighting: per-channel gain and offset on every DC colour plus per-Gaussian noise;
- camera: each camera jittered on a sphere about its look-at point (camera 0 wide, the
  others narrow: the spec's two ranges).

Edits are drawn per frame, as the released generator does, or once per episode
(`EditSettings.per_episode`). The number of Gaussians is the same in every frame, so a
demonstration of T steps renders as one program over [T, cameras].
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.robosplat import kinematics, urdf
from jaxlab.robosplat.sim import closed_loop
from jaxlab.robosplat.scene import TabletopAssets, compose_frame
from jaxlab.splat import Camera, Gaussians, estimate_capacity_for, render
from jaxlab.splat.edit import (
    CAMERA_0_JITTER,
    CAMERA_1_JITTER,
    PHOTO_TEXTURE_NAMES,
    LightingRanges,
    SphericalJitter,
    concat_gaussians,
    jitter_camera,
    photo_textures,
    relight,
    sample_lighting,
    textured_plane,
)

log = logging.getLogger(__name__)

# Photographs the generator paints the table with: all of scikit-image's but those the
# closed-loop checks hold out.
GENERATION_TEXTURES = tuple(n for n in PHOTO_TEXTURE_NAMES if n not in closed_loop.TEXTURE_NAMES)
BACKGROUND_RGB = (1.0, 1.0, 1.0)  # the simulator's clear colour


@dataclasses.dataclass(frozen=True)
class EditSettings:
  """Which edits a generated demonstration gets, and how often they are drawn.

  Attributes:
    lighting: apply the lighting edit (probability `lighting_prob` per draw).
    lighting_ranges: its distributions (the spec's by default).
    texture: replace the table top by a photograph (probability `texture_prob` per draw).
    textures: names of the photographs (`jaxlab.splat.edit.PHOTO_TEXTURE_NAMES`).
    camera_jitter: jitter the cameras (probability `camera_prob` per draw).
    jitters: per camera; None: CAMERA_0_JITTER for the first, CAMERA_1_JITTER for the rest.
    per_episode: draw every edit once per demonstration instead of once per frame.
    table_grid: Gaussians of the texture plane along x and y.
  """

  lighting: bool = True
  lighting_prob: float = 0.5
  lighting_ranges: LightingRanges = LightingRanges()
  texture: bool = True
  texture_prob: float = 0.5
  textures: tuple[str, ...] = GENERATION_TEXTURES
  camera_jitter: bool = True
  camera_prob: float = 0.5
  jitters: tuple[SphericalJitter, ...] | None = None
  per_episode: bool = False
  table_grid: tuple[int, int] = (75, 50)

  def __post_init__(self):
    for name in ("lighting_prob", "texture_prob", "camera_prob"):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise ValueError(f"EditSettings.{name} must be in [0, 1]; got {getattr(self, name)!r}")
    if self.texture and not self.textures:
      raise ValueError("EditSettings.texture is on but `textures` is empty")

  @classmethod
  def none(cls) -> EditSettings:
    """No edit: the reconstructed scene as it stands."""
    return cls(lighting=False, texture=False, camera_jitter=False)


@dataclasses.dataclass(frozen=True)
class RenderCamera:
  """A camera of the generated demonstrations: OpenCV pose, fov, size and look-at point."""

  name: str
  c2w_44: np.ndarray
  fov_x: float
  width: int
  height: int
  look_at_3: np.ndarray

  @classmethod
  def from_spec(cls, spec) -> RenderCamera:
    """From a `jaxlab.robosplat.sim.cameras.CameraSpec` (look-at: `closed_loop.camera_look_at`)."""
    look_at = closed_loop.camera_look_at(spec)
    return cls(spec.name, np.asarray(spec.c2w_44, np.float32), float(spec.fov_x), int(spec.width), int(spec.height),
               look_at.astype(np.float32))


def table_planes(table_xy: Sequence[float], settings: EditSettings, table_size: Sequence[float] = (1.5, 1.0)
                 ) -> Gaussians | None:
  """[K, P] Gaussians: the table top painted with each of `settings.textures` (None: no texture edit)."""
  if not settings.texture:
    return None
  images = photo_textures(settings.textures)
  su, sv = table_size
  origin = (table_xy[0] - 0.5 * su, table_xy[1] - 0.5 * sv, 5e-4)
  planes = [textured_plane(images[name], origin_3=origin, u_axis_3=(1, 0, 0), v_axis_3=(0, 1, 0),
                           size_uv=(su, sv), points_uv=tuple(settings.table_grid)) for name in settings.textures]
  return jax.tree.map(lambda *xs: jnp.stack(xs), *planes)


class DemoRenderer:
  """Renders demonstrations of one scene: `renderer(qpos_t9, object_pose_t44, obj, rng)`.

  Args:
    background: static world Gaussians.
    table_top_n: [N_background] bool, hidden where the texture edit paints the table.
    links_lm, link_ids: robot link Gaussians and their FK rows (`SceneParts`).
    model: the robot for forward kinematics.
    cameras: the demonstration cameras.
    settings: the edits.
    table_xy: table centre (for the texture plane).
    implementation: the rasterizer (`jaxlab.ops.gaussian_raster`'s argument; None: the best
      available, logged by the op).
  """

  def __init__(self, background: Gaussians, table_top_n: np.ndarray, links_lm: Gaussians, link_ids: np.ndarray,
               model: urdf.RobotModel, cameras: Sequence[RenderCamera], settings: EditSettings,
               table_xy: Sequence[float], *, implementation: str | None = None):
    if not cameras:
      raise ValueError("DemoRenderer needs at least one camera")
    sizes = {(c.width, c.height) for c in cameras}
    if len(sizes) != 1:
      raise ValueError(f"demonstration cameras must share one image size; got {sorted(sizes)}")
    self.cameras = tuple(cameras)
    self.settings = settings
    self.model = model
    self.implementation = implementation
    # The object slot is filled per call (object-type replacement swaps it).
    self._assets = TabletopAssets(background=background, links_lm=links_lm, link_ids=jnp.asarray(link_ids, jnp.int32),
                                  table_top=jnp.asarray(table_top_n, bool), object=None)
    self._planes = table_planes(table_xy, settings)
    jitters = settings.jitters or (CAMERA_0_JITTER,) + (CAMERA_1_JITTER,) * (len(cameras) - 1)
    if len(jitters) != len(cameras):
      raise ValueError(f"{len(jitters)} camera jitters for {len(cameras)} cameras")
    self._jitters = tuple(jitters)
    self._capacity = None
    self.frames_rendered = 0

  # -- one frame ------------------------------------------------------------------------

  def _scene(self, qpos_9, object_pose_44, obj: Gaussians, key) -> Gaussians:
    s = self.settings
    texture_key, use_texture_key, light_key, use_light_key = jax.random.split(key, 4)
    assets = self._assets.replace(object=obj)
    background = assets.background
    if self._planes is not None:
      use_texture = jax.random.bernoulli(use_texture_key, s.texture_prob)
      index = jax.random.randint(texture_key, (), 0, self._planes.means.shape[0])
      plane = jax.tree.map(lambda x: x[index], self._planes)
      plane = plane.replace(active=plane.active & use_texture)
      background = concat_gaussians([background.replace(active=background.active & ~(assets.table_top & use_texture)),
                                     plane])
    link_poses = kinematics.forward_kinematics(self.model, qpos_9)
    scene = compose_frame(assets, link_poses, object_pose_44, background=background)
    if s.lighting:
      gain, offset, noise = sample_lighting(light_key, scene.num, s.lighting_ranges)
      lit = relight(scene, gain, offset, noise)
      use_light = jax.random.bernoulli(use_light_key, s.lighting_prob)
      scene = jax.tree.map(lambda a, b: jnp.where(use_light, a, b), lit, scene)
    return scene

  def _camera(self, index: int, key) -> Camera:
    c = self.cameras[index]
    c2w = jnp.asarray(c.c2w_44)
    if self.settings.camera_jitter:
      jittered = jitter_camera(c2w, jnp.asarray(c.look_at_3), self._jitters[index], key)
      use = jax.random.bernoulli(jax.random.fold_in(key, 1), self.settings.camera_prob)
      c2w = jnp.where(use, jittered, c2w)
    return Camera.from_fov(c2w, fov_x_radians=c.fov_x, width=c.width, height=c.height)

  def _frame(self, qpos_9, object_pose_44, obj, key, *, capacity: int):
    scene_key, camera_key = jax.random.split(key)
    scene = self._scene(qpos_9, object_pose_44, obj, scene_key)
    images, overflow = [], []
    for i in range(len(self.cameras)):
      out = render(scene, self._camera(i, jax.random.fold_in(camera_key, i)), background=jnp.asarray(BACKGROUND_RGB),
                   capacity=capacity, on_overflow="ignore", implementation=self.implementation)
      images.append(out.rgb)
      overflow.append(out.overflow)
    return jnp.stack(images), jnp.any(jnp.stack(overflow))

  @functools.partial(jax.jit, static_argnums=(0,), static_argnames=("capacity",))
  def _render_all(self, qpos_t9, object_pose_t44, obj, keys_t, *, capacity: int):
    images_tc, overflow_t = jax.vmap(lambda q, p, k: self._frame(q, p, obj, k, capacity=capacity))(
        qpos_t9, object_pose_t44, keys_t)
    return jnp.clip(jnp.round(images_tc * 255.0), 0, 255).astype(jnp.uint8), overflow_t

  def _initial_capacity(self, qpos_t9, object_pose_t44, obj) -> int:
    """Intersections of the unedited first frame, with room for the edits."""
    scene = self._scene(jnp.asarray(qpos_t9[0]), jnp.asarray(object_pose_t44[0]), obj, jax.random.key(0))
    cams = [Camera.from_fov(jnp.asarray(c.c2w_44), fov_x_radians=c.fov_x, width=c.width, height=c.height)
            for c in self.cameras]
    return int(2 * max(estimate_capacity_for(scene, c) for c in cams))

  def __call__(self, qpos_t9, object_pose_t44, obj: Gaussians, rng: jax.Array) -> dict[str, np.ndarray]:
    """{camera name: uint8 [T, H, W, 3]} of the demonstration.

    Args:
      qpos_t9: [T, J] joint positions per frame (the robot's FK input).
      object_pose_t44: [T, 4, 4] world pose of the object's frame per frame.
      obj: the object's Gaussians in its frame.
      rng: jax key of the edits.
    """
    qpos_t9 = jnp.asarray(qpos_t9, jnp.float32)
    object_pose_t44 = jnp.asarray(object_pose_t44, jnp.float32)
    num_frames = qpos_t9.shape[0]
    if object_pose_t44.shape != (num_frames, 4, 4):
      raise ValueError(f"object_pose_t44 must have shape [{num_frames}, 4, 4]; got {object_pose_t44.shape}")
    if self.settings.per_episode:  # one draw of every edit, shared by all frames
      keys_t = jnp.repeat(rng[None], num_frames, axis=0)
    else:
      keys_t = jax.random.split(rng, num_frames)
    if self._capacity is None:
      self._capacity = self._initial_capacity(qpos_t9, object_pose_t44, obj)
    while True:
      images, overflow = self._render_all(qpos_t9, object_pose_t44, obj, keys_t, capacity=self._capacity)
      if not bool(jnp.any(overflow)):
        break
      # Never a silently clipped image: grow the buffer and render again.
      self._capacity = int(math.ceil(self._capacity * 1.5))
      log.warning("demo render: tile intersections overflowed; re-rendering with capacity %d", self._capacity)
    self.frames_rendered += num_frames * len(self.cameras)
    images = np.asarray(images)
    return {c.name: images[:, i] for i, c in enumerate(self.cameras)}

"""Camera edit: jitter a calibrated camera on a sphere about a look-at point.

The camera centre is written in spherical coordinates about the look-at point L,
(r, theta polar from world +z, phi azimuth from +x). Each of L (per axis), r, theta, phi
and a roll about the view axis gets a uniform offset in [-half, +half]; the camera is put
back at the new spherical position, turned to face the new look-at point with world z up,
and rolled. Poses are OpenCV camera-to-world (x right, y down, z forward).
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.splat.validate import is_concrete

# Polar angles closer than this to the poles are clamped: looking straight up or down,
# "world z up" no longer fixes the camera's right axis.
_POLE_MARGIN = 1e-2
_WORLD_UP = (0.0, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class SphericalJitter:
  """Half-widths of the uniform jitter; each value v means U(-v, v).

  Attributes:
    look_at: metres, applied to each axis of the look-at point independently.
    radius: metres, camera distance to the look-at point.
    theta: radians, polar angle (from world +z).
    phi: radians, azimuth about world z.
    roll: radians, rotation about the camera's view axis.
  """

  look_at: float = 0.0
  radius: float = 0.0
  theta: float = 0.0
  phi: float = 0.0
  roll: float = 0.0

  def __post_init__(self):
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"SphericalJitter.{field.name} must be a finite half-width >= 0; got {value!r}")


# The two presets of RoboSplat's camera augmentation (front and side camera).
CAMERA_0_JITTER = SphericalJitter(look_at=0.1, radius=0.2, theta=math.pi / 6, phi=math.pi / 6, roll=math.pi / 6)
CAMERA_1_JITTER = SphericalJitter(look_at=0.05, radius=0.08, theta=math.pi / 24, phi=math.pi / 12, roll=math.pi / 12)


def _matmul33(a_33: jax.Array, b_33: jax.Array) -> jax.Array:
  """a @ b as an elementwise product-sum (a GPU dot may round float32 to TF32)."""
  return jnp.sum(a_33[:, :, None] * b_33[None, :, :], axis=1)


def _look_at_rotation(eye_3: jax.Array, target_3: jax.Array) -> jax.Array:
  """[3, 3] OpenCV camera-to-world rotation at eye facing target, image up ~ world +z."""
  forward = target_3 - eye_3
  forward = forward / jnp.linalg.norm(forward)
  right = jnp.cross(forward, jnp.asarray(_WORLD_UP, forward.dtype))
  right = right / jnp.linalg.norm(right)
  down = jnp.cross(forward, right)
  return jnp.stack([right, down, forward], axis=-1)


def _roll_33(angle: jax.Array) -> jax.Array:
  """Rotation about the camera z (view) axis, in camera coordinates."""
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  zero, one = jnp.zeros_like(angle), jnp.ones_like(angle)
  return jnp.stack([jnp.stack([cos, -sin, zero]), jnp.stack([sin, cos, zero]), jnp.stack([zero, zero, one])])


def jitter_camera(c2w_44: jax.Array, look_at_3: jax.Array, jitter: SphericalJitter, rng: jax.Array) -> jax.Array:
  """A randomly jittered copy of an OpenCV camera-to-world pose.

  The camera's orientation relative to the look-at frame (facing L, world z up) is kept:
  a camera that faces L exactly (as `jaxlab.splat.look_at` builds it) faces the jittered
  point exactly afterwards, rolled by the sampled roll. Zero half-widths return the pose.
  Pure jax: jit it, or vmap it over keys for a batch of poses.

  Args:
    c2w_44: [4, 4] camera-to-world pose (OpenCV axes).
    look_at_3: [3] the point the camera orbits.
    jitter: half-widths, e.g. `CAMERA_0_JITTER`.
    rng: a jax PRNG key.

  Returns:
    [4, 4] float32 camera-to-world pose.
  """
  if np.shape(c2w_44) != (4, 4):
    raise ValueError(f"c2w_44 must have shape [4, 4]; got {np.shape(c2w_44)}")
  if np.shape(look_at_3) != (3,):
    raise ValueError(f"look_at_3 must have shape [3]; got {np.shape(look_at_3)}")
  if not isinstance(jitter, SphericalJitter):
    raise ValueError(f"jitter must be a SphericalJitter; got {type(jitter).__name__}")
  if is_concrete(c2w_44, look_at_3):
    offset = np.asarray(c2w_44, np.float64)[:3, 3] - np.asarray(look_at_3, np.float64)
    if not np.all(np.isfinite(offset)) or np.linalg.norm(offset) == 0:
      raise ValueError("jitter_camera: the camera centre must be finite and differ from look_at_3")
    if np.linalg.norm(offset[:2]) <= 1e-6 * np.linalg.norm(offset):
      raise ValueError("jitter_camera: the camera is straight above/below look_at_3 (world z up fixes no frame)")
  return _jitter_camera(jnp.asarray(c2w_44, jnp.float32), jnp.asarray(look_at_3, jnp.float32), rng, jitter=jitter)


@functools.partial(jax.jit, static_argnames=("jitter",))
def _jitter_camera(c2w_44, look_at_3, rng, *, jitter: SphericalJitter) -> jax.Array:
  """`jitter_camera` on checked inputs, as one compiled program."""
  half_7 = jnp.asarray([jitter.look_at] * 3 + [jitter.radius, jitter.theta, jitter.phi, jitter.roll], jnp.float32)
  delta_7 = half_7 * jax.random.uniform(rng, (7,), jnp.float32, -1.0, 1.0)

  center_3 = c2w_44[:3, 3]
  offset_3 = center_3 - look_at_3
  radius = jnp.linalg.norm(offset_3)
  theta = jnp.arccos(jnp.clip(offset_3[2] / radius, -1.0, 1.0))
  phi = jnp.arctan2(offset_3[1], offset_3[0])

  new_look_at_3 = look_at_3 + delta_7[:3]
  # A jitter larger than the radius would flip the camera through L: keep it in front.
  new_radius = jnp.maximum(radius + delta_7[3], 1e-3 * radius)
  new_theta = jnp.clip(theta + delta_7[4], _POLE_MARGIN, math.pi - _POLE_MARGIN)
  new_phi = phi + delta_7[5]
  direction_3 = jnp.stack([
      jnp.sin(new_theta) * jnp.cos(new_phi), jnp.sin(new_theta) * jnp.sin(new_phi), jnp.cos(new_theta)])
  new_center_3 = new_look_at_3 + new_radius * direction_3

  # The calibrated camera's rotation relative to its own look-at frame, re-applied.
  residual_33 = _matmul33(_look_at_rotation(center_3, look_at_3).T, c2w_44[:3, :3])
  rotation_33 = _matmul33(_matmul33(_look_at_rotation(new_center_3, new_look_at_3), residual_33), _roll_33(delta_7[6]))
  top_34 = jnp.concatenate([rotation_33, new_center_3[:, None]], axis=1)
  return jnp.concatenate([top_34, jnp.asarray([[0.0, 0.0, 0.0, 1.0]], jnp.float32)], axis=0)

"""Placing assets in a scene: a uniform scale, a rotation and a translation per instance.

A point p of an asset lands at s * R p + t. A Gaussian's rotation becomes R R_g (the
quaternion product q * q_g), its scales are multiplied by s (log-scales + log s), and a
bounding sphere (c, r) becomes (s R c + t, s r). Opacity and colour do not change (SH
degree 0 has no view dependence to rotate).
"""

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.splat.gaussians import Gaussians, normalize_quaternions, rotation_matrices


@flax.struct.dataclass
class Instances:
  """I placed copies of assets.

  Attributes:
    asset: [I] int32 index of each instance's asset (into the scene's bundle list).
    scale: [I] float32 uniform scale s > 0.
    quat: [I, 4] float32 rotation (w, x, y, z), unit.
    translation: [I, 3] float32.
  """

  asset: jax.Array
  scale: jax.Array
  quat: jax.Array
  translation: jax.Array

  @property
  def num(self) -> int:
    return int(np.shape(self.scale)[0])


def check_instances(instances: Instances, num_assets: int, *, names: list[str] | None = None) -> None:
  """ValueError naming the first instance with a bad asset index, scale or quaternion."""
  asset = np.asarray(instances.asset)
  scale = np.asarray(instances.scale, np.float64)
  quat = np.asarray(instances.quat, np.float64)
  translation = np.asarray(instances.translation, np.float64)
  num = scale.shape[0] if scale.ndim == 1 else -1
  for name, value, shape in (("asset", asset, (num,)), ("scale", scale, (num,)), ("quat", quat, (num, 4)),
                             ("translation", translation, (num, 3))):
    if value.shape != shape:
      raise ValueError(f"instances.{name} has shape {value.shape}, expected {shape}")
  label = lambda i: f"instance {i}" + (f" (asset {names[asset[i]]!r})" if names and 0 <= asset[i] < len(names) else "")
  for i in range(num):
    if not 0 <= asset[i] < num_assets:
      raise ValueError(f"{label(i)} names asset {int(asset[i])}, but there are {num_assets} asset(s)")
    if not (np.isfinite(scale[i]) and scale[i] > 0):
      raise ValueError(f"{label(i)} has scale {scale[i]}; it must be finite and > 0")
    norm = np.linalg.norm(quat[i])
    if not np.all(np.isfinite(quat[i])) or norm < 1e-8:
      raise ValueError(f"{label(i)} has quaternion {quat[i].tolist()}; it must be finite and non-zero")
    if not np.all(np.isfinite(translation[i])):
      raise ValueError(f"{label(i)} has a non-finite translation {translation[i].tolist()}")


def make_instances(asset, scale, quat, translation) -> Instances:
  """Instances from host values, quaternions normalised (checked by `check_instances`)."""
  quat = np.asarray(quat, np.float64)
  norms = np.linalg.norm(quat, axis=-1, keepdims=True)
  return Instances(asset=np.asarray(asset, np.int32), scale=np.asarray(scale, np.float32),
                   quat=np.asarray(quat / np.where(norms > 0, norms, 1.0), np.float32),
                   translation=np.asarray(translation, np.float32))


def quaternion_product(a_n4: jax.Array, b_n4: jax.Array) -> jax.Array:
  """a * b for (w, x, y, z) quaternions: the rotation b, then a."""
  aw, ax, ay, az = jnp.moveaxis(a_n4, -1, 0)
  bw, bx, by, bz = jnp.moveaxis(b_n4, -1, 0)
  return jnp.stack([
      aw * bw - ax * bx - ay * by - az * bz,
      aw * bx + ax * bw + ay * bz - az * by,
      aw * by - ax * bz + ay * bw + az * bx,
      aw * bz + ax * by - ay * bx + az * bw,
  ], axis=-1)


def transform_points(points_n3: jax.Array, scale_n: jax.Array, rotation_n33: jax.Array, translation_n3: jax.Array) -> jax.Array:
  """s R p + t, row by row (each row with its own transform; broadcasting allowed)."""
  rotated = jnp.einsum("...ij,...j->...i", rotation_n33, points_n3, precision=jax.lax.Precision.HIGHEST)
  return scale_n[..., None] * rotated + translation_n3


def transform_gaussians(gaussians: Gaussians, scale_n: jax.Array, quat_n4: jax.Array, translation_n3: jax.Array) -> Gaussians:
  """The Gaussians placed by per-row (or broadcast) transforms: means, rotations and scales."""
  scale_n = jnp.asarray(scale_n, jnp.float32)
  quat_n4 = normalize_quaternions(jnp.asarray(quat_n4, jnp.float32))
  return gaussians.replace(
      means=transform_points(gaussians.means, scale_n, rotation_matrices(quat_n4), jnp.asarray(translation_n3, jnp.float32)),
      quats=quaternion_product(quat_n4, normalize_quaternions(gaussians.quats)),
      log_scales=gaussians.log_scales + jnp.log(scale_n)[..., None],
  )


def place_bundle(bundle, scale: float, quat_4, translation_3):
  """The bundle moved into world space by one transform (V3DG instances bundles this way).

  Gaussians as `transform_gaussians`; sphere centres s R c + t; finite radii times s
  (-1 and +inf markers kept).
  """
  quat_4 = np.asarray(quat_4, np.float32) / np.linalg.norm(quat_4)
  scale_a = jnp.asarray(scale, jnp.float32)
  rotation = rotation_matrices(jnp.asarray(quat_4))
  place = lambda c: transform_points(jnp.asarray(c, jnp.float32), scale_a, rotation, jnp.asarray(translation_3, jnp.float32))
  scale_radius = lambda r: jnp.where(jnp.asarray(r) > 0, jnp.asarray(r) * scale_a, jnp.asarray(r))
  return bundle.replace(
      gaussians=transform_gaussians(jax.tree.map(jnp.asarray, bundle.gaussians), scale_a, quat_4, translation_3),
      child_center=place(bundle.child_center), parent_center=place(bundle.parent_center),
      child_radius=scale_radius(bundle.child_radius), parent_radius=scale_radius(bundle.parent_radius),
      bound_center=place(bundle.bound_center), bound_radius=jnp.asarray(bundle.bound_radius) * scale_a)

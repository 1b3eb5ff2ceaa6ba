"""Object-type edit: swap an object's Gaussians for another asset standing in the same place.

The old object's Gaussians are deactivated; the new asset is translated so that it rests on
the support plane (its lowest point at z = support_z) and its grasp point lies on the
vertical line through the old object's grasp point, so the old grasp (x, y) still applies.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.splat.edit.transform import concat_gaussians, select_gaussians
from jaxlab.splat.gaussians import Gaussians
from jaxlab.splat.validate import is_concrete


@jax.jit
def lowest_point_z(gaussians: Gaussians, num_sigmas: float = 2.0) -> jax.Array:
  """min over active Gaussians of mean_z - num_sigmas * sigma_z (sigma_z: world-z std).

  sigma_z^2 is the zz entry of the covariance R S S^T R^T. Inactive slots are ignored.
  """
  sigma_z_n = jnp.sqrt(gaussians.covariances()[:, 2, 2])
  bottom_n = gaussians.means[:, 2] - num_sigmas * sigma_z_n
  return jnp.min(jnp.where(gaussians.active, bottom_n, jnp.inf))


def _point3(name: str, value) -> jax.Array:
  if np.shape(value) != (3,):
    raise ValueError(f"replace_object: {name} must have shape [3]; got {list(np.shape(value))}")
  return jnp.asarray(value, jnp.float32)


def replace_object(
    scene: Gaussians,
    object_mask_n: jax.Array,
    new_object: Gaussians,
    *,
    support_z: float | jax.Array,
    grasp_point_3: jax.Array,
    new_grasp_point_3: jax.Array,
    bottom_z: float | jax.Array | None = None,
    num_sigmas: float = 2.0,
) -> tuple[Gaussians, jax.Array]:
  """The scene with one object replaced by `new_object`, and the 4x4 that placed it.

  Args:
    scene: N Gaussians holding the old object.
    object_mask_n: [N] bool, the old object's Gaussians (they become inactive).
    new_object: the new asset, in its own coordinates.
    support_z: height of the plane the object stands on (the table top, z = 0).
    grasp_point_3: [3] the old object's grasp point (world).
    new_grasp_point_3: [3] the new asset's grasp point, in the asset's coordinates.
    bottom_z: the asset's lowest z (its coordinates); None = `lowest_point_z(new_object, num_sigmas)`.
    num_sigmas: how many world-z standard deviations below a mean count as the Gaussian's bottom.

  Returns:
    (scene', pose_44): scene' = [scene with the object deactivated, translated asset]
    (N + M slots); pose_44 the float32 translation applied to the asset. The asset's grasp
    point moves to (grasp_x, grasp_y, new_grasp_z + pose_44[2, 3]).

  Raises:
    ValueError: naming the problem, for a mask of the wrong shape, a mask selecting no
      active Gaussian, or an asset with no active Gaussian (checked when concrete).
  """
  if np.shape(object_mask_n) != (scene.num,):
    raise ValueError(
        f"replace_object: object_mask_n must have shape [{scene.num}]; got {list(np.shape(object_mask_n))}")
  object_mask_n = jnp.asarray(object_mask_n, jnp.bool_)
  if is_concrete(object_mask_n, scene.active) and not np.any(np.asarray(object_mask_n) & np.asarray(scene.active)):
    raise ValueError("replace_object: object_mask_n is empty (it selects no active Gaussian of the scene)")
  if bottom_z is None and is_concrete(new_object.active) and not np.any(np.asarray(new_object.active)):
    raise ValueError("replace_object: new_object has no active Gaussian")
  grasp_point_3 = _point3("grasp_point_3", grasp_point_3)
  new_grasp_point_3 = _point3("new_grasp_point_3", new_grasp_point_3)
  bottom = lowest_point_z(new_object, num_sigmas) if bottom_z is None else jnp.asarray(bottom_z, jnp.float32)

  translation_3 = jnp.stack([
      grasp_point_3[0] - new_grasp_point_3[0],
      grasp_point_3[1] - new_grasp_point_3[1],
      jnp.asarray(support_z, jnp.float32) - bottom,
  ])
  # A pure translation: rotations, scales and SH stay as they are.
  placed = new_object.replace(means=new_object.means + translation_3.astype(new_object.means.dtype))
  pose_44 = jnp.eye(4, dtype=jnp.float32).at[:3, 3].set(translation_3)
  return concat_gaussians([select_gaussians(scene, jnp.logical_not(object_mask_n)), placed]), pose_44

"""EWA projection of 3D Gaussians into one pinhole camera, as in gsplat / INRIA 3DGS.

For each Gaussian: the mean goes to camera space; the covariance R S S^T R^T is carried
through the local affine approximation J of the perspective map (EWA splatting, with the
view-frustum clamp of x/z and y/z used by gsplat); the 2D covariance is dilated by `eps2d`
pixels^2 and inverted into a conic; the 3-sigma radius bounds its footprint; and the SH
colour is evaluated for the direction from the camera centre to the mean. Culled
Gaussians get radius 0 and zeros elsewhere.

Everything is differentiable with `jax.grad` with respect to every Gaussian parameter
(and the camera). Culled rows never produce NaN gradients: the culling decision is made
by a first, gradient-free pass, and the differentiated pass then computes every culled
row from a harmless stand-in Gaussian (a "double where" over whole rows).
"""

import functools
import math

import flax.struct
import jax
import jax.numpy as jnp

from jaxlab.splat.camera import Camera
from jaxlab.splat.gaussians import IDENTITY_QUAT, Gaussians, rotation_matrices
from jaxlab.splat.sh import sh_to_color
from jaxlab.splat.validate import check_camera, check_gaussians, is_concrete

# Radii are capped so that mean +- radius stays exact in float32 and far from int32 overflow;
# the in-image test uses the capped radius, so what is kept is what binning will see.
MAX_RADIUS = 2**24
# gsplat widens the image by this fraction of the half field of view before clamping x/z
# and y/z in the Jacobian: Gaussians far outside the view keep a bounded footprint.
_FRUSTUM_MARGIN = 0.3
# Floor of the discriminant in gsplat's largest-eigenvalue formula (radius only).
_MIN_DISCRIMINANT = 0.01


@flax.struct.dataclass
class Projected:
  """Per-Gaussian screen-space quantities for one camera (zeros where culled).

  Attributes:
    means2d: [N, 2] pixel coordinates (x = column, y = row) of the projected means.
    conics: [N, 3] (a, b, c) of the inverse dilated 2D covariance [[a, b], [b, c]].
    colors: [N, 3] SH colour for the view direction, + 0.5, clamped at 0.
    opacities: [N] sigmoid(opacity_logits), times the antialiasing compensation if asked.
    depths: [N] camera-space z.
    radii: [N] int32 3-sigma radius in pixels; 0 means culled.
  """

  means2d: jax.Array
  conics: jax.Array
  colors: jax.Array
  opacities: jax.Array
  depths: jax.Array
  radii: jax.Array


def _where_rows(keep_n: jax.Array, x: jax.Array, stand_in) -> jax.Array:
  """x in kept rows, `stand_in` (broadcast over the row) elsewhere."""
  return jnp.where(keep_n.reshape(-1, *([1] * (x.ndim - 1))), x, jnp.asarray(stand_in, x.dtype))


def _stand_in(fields: dict, keep_n: jax.Array) -> dict:
  """The Gaussian fields with a unit Gaussian (identity rotation, zero SH) in unkept rows."""
  stand_ins = {"means": 0.0, "log_scales": 0.0, "quats": IDENTITY_QUAT, "opacity_logits": 0.0, "sh": 0.0}
  return {name: _where_rows(keep_n, x, stand_ins[name]) for name, x in fields.items()}


def _geometry(fields: dict, keep_n: jax.Array, camera: Camera, eps2d: float) -> dict:
  """Camera-space means, dilated 2D covariances, radii and visibility of the kept rows.

  Rows that are not kept, or whose mean falls outside [near, far], are computed from a
  point at depth 1 instead, so no division by zero or overflow can reach a gradient.
  """
  rotation_33 = camera.world_to_camera[:3, :3]
  translation_3 = camera.world_to_camera[:3, 3]
  # Multiply-and-sum rather than matmul: a GPU dot may round float32 to TF32.
  means_c = jnp.sum(rotation_33[None] * fields["means"][:, None, :], axis=-1) + translation_3
  depth_n = means_c[:, 2]
  usable_n = keep_n & (depth_n >= camera.near) & (depth_n <= camera.far)
  means_c = _where_rows(usable_n, means_c, (0.0, 0.0, 1.0))
  x, y, z = means_c[:, 0], means_c[:, 1], means_c[:, 2]
  inv_z = 1.0 / z

  means2d = jnp.stack([camera.fx * x * inv_z + camera.cx, camera.fy * y * inv_z + camera.cy], axis=-1)

  # Covariance factor R S, rotated into camera space: Sigma_c = (W R S)(W R S)^T.
  rotation_scale_n33 = rotation_matrices(fields["quats"]) * jnp.exp(fields["log_scales"])[:, None, :]
  camera_factor_n33 = jnp.sum(rotation_33[None, :, :, None] * rotation_scale_n33[:, None, :, :], axis=2)

  half_tan_x = 0.5 * camera.width / camera.fx
  half_tan_y = 0.5 * camera.height / camera.fy
  lim_x_pos = (camera.width - camera.cx) / camera.fx + _FRUSTUM_MARGIN * half_tan_x
  lim_x_neg = camera.cx / camera.fx + _FRUSTUM_MARGIN * half_tan_x
  lim_y_pos = (camera.height - camera.cy) / camera.fy + _FRUSTUM_MARGIN * half_tan_y
  lim_y_neg = camera.cy / camera.fy + _FRUSTUM_MARGIN * half_tan_y
  clamped_x = z * jnp.clip(x * inv_z, -lim_x_neg, lim_x_pos)
  clamped_y = z * jnp.clip(y * inv_z, -lim_y_neg, lim_y_pos)
  # J = [[fx/z, 0, -fx x/z^2], [0, fy/z, -fy y/z^2]]; rows of J (W R S):
  j00, j02 = camera.fx * inv_z, -camera.fx * clamped_x * inv_z * inv_z
  j11, j12 = camera.fy * inv_z, -camera.fy * clamped_y * inv_z * inv_z
  j_row0_n3 = j00[:, None] * camera_factor_n33[:, 0] + j02[:, None] * camera_factor_n33[:, 2]
  j_row1_n3 = j11[:, None] * camera_factor_n33[:, 1] + j12[:, None] * camera_factor_n33[:, 2]
  cov_a = jnp.sum(j_row0_n3 * j_row0_n3, axis=-1)
  cov_b = jnp.sum(j_row0_n3 * j_row1_n3, axis=-1)
  cov_c = jnp.sum(j_row1_n3 * j_row1_n3, axis=-1)
  det_undilated = cov_a * cov_c - cov_b * cov_b
  cov_a = cov_a + eps2d
  cov_c = cov_c + eps2d
  det = cov_a * cov_c - cov_b * cov_b

  # Integer footprint: no gradient flows through it.
  half_trace, det_sg = jax.lax.stop_gradient(0.5 * (cov_a + cov_c)), jax.lax.stop_gradient(det)
  largest_eigenvalue = half_trace + jnp.sqrt(jnp.maximum(_MIN_DISCRIMINANT, half_trace * half_trace - det_sg))
  radius = jnp.minimum(jnp.ceil(3.0 * jnp.sqrt(largest_eigenvalue)), MAX_RADIUS)
  center = jax.lax.stop_gradient(means2d)
  inside = (
      (center[:, 0] + radius > 0) & (center[:, 0] - radius < camera.width)
      & (center[:, 1] + radius > 0) & (center[:, 1] - radius < camera.height))
  checked = (center[:, 0], center[:, 1], cov_a, cov_b, cov_c, det, det_undilated, radius)
  finite = jnp.all(jnp.isfinite(jnp.stack(checked)), axis=0)
  visible_n = usable_n & (det > 0) & finite & inside
  return {
      "means_c": means_c,
      "means2d": means2d,
      "cov_abc": (cov_a, cov_b, cov_c),
      "det": det,
      "det_undilated": det_undilated,
      "radius": radius,
      "visible": visible_n,
  }


def project(gaussians: Gaussians, camera: Camera, *, eps2d: float = 0.3, antialiased: bool = False) -> Projected:
  """Projects Gaussians into one camera (batch over cameras with `jax.vmap`).

  Math runs in float32 (float64 if the Gaussians are float64). A Gaussian is culled
  (radius 0, zeros elsewhere) when it is inactive, has a non-finite parameter, lies
  outside [near, far] in depth, has a non-positive 2D determinant, or its box
  mean +- radius misses the image.

  Args:
    gaussians: the scene.
    camera: one camera (no batch dims).
    eps2d: dilation added to the 2D covariance diagonal, in pixels^2 (low-pass filter).
    antialiased: multiply opacities by sqrt(det(cov2d) / det(cov2d + eps2d I)) (gsplat's
      `antialiased` mode, Mip-Splatting's compensation), which keeps the energy of small
      Gaussians unchanged by the dilation; always <= 1.

  Returns:
    `Projected`, float arrays of the compute dtype, int32 radii.

  Raises:
    ValueError: for malformed Gaussians or camera (see `validate`), a batched camera or a
      negative eps2d.
  """
  check_gaussians(gaussians)
  check_camera(camera)
  if camera.batch_shape:
    raise ValueError(
        f"project takes one camera; got a batch of shape {camera.batch_shape}."
        " Map over cameras with jax.vmap(project, in_axes=(None, 0)).")
  if is_concrete(eps2d) and not float(eps2d) >= 0:
    raise ValueError(f"eps2d must be >= 0 (pixels^2); got {eps2d}")

  names = ("means", "log_scales", "quats", "opacity_logits", "sh")
  fields = {name: getattr(gaussians, name) for name in names}
  return _project_jit(fields, gaussians.active, camera, eps2d, antialiased=antialiased)


@functools.partial(jax.jit, static_argnames=("antialiased",))
def _project_jit(fields: dict, active_n: jax.Array, camera: Camera, eps2d: jax.Array, *, antialiased: bool) -> Projected:
  """The projection proper, on checked inputs; one compiled program per shape."""
  dtype = jnp.result_type(jnp.float32, *(x.dtype for x in fields.values()))
  fields = {name: jnp.asarray(x, dtype) for name, x in fields.items()}
  camera = jax.tree.map(lambda x: jnp.asarray(x, dtype), camera)
  eps2d = jnp.asarray(eps2d, dtype)
  num = active_n.shape[0]
  finite_n = jnp.ones((num,), jnp.bool_)
  for x in fields.values():
    finite_n &= jnp.all(jnp.isfinite(x.reshape(num, math.prod(x.shape[1:]))), axis=1)
  drawable_n = active_n & finite_n

  # Pass 1 only decides which rows are drawn; booleans carry no gradient.
  frozen = jax.lax.stop_gradient((fields, camera))
  visible_n = _geometry(_stand_in(frozen[0], drawable_n), drawable_n, frozen[1], eps2d)["visible"]
  # Pass 2 is the differentiated one; culled rows hold a stand-in, so their gradients are 0.
  fields = _stand_in(fields, visible_n)
  geometry = _geometry(fields, visible_n, camera, eps2d)

  cov_a, cov_b, cov_c = geometry["cov_abc"]
  det = geometry["det"]
  conics = jnp.stack([cov_c / det, -cov_b / det, cov_a / det], axis=-1)
  colors = sh_to_color(fields["sh"], fields["means"] - camera.camera_center())
  opacities = jax.nn.sigmoid(fields["opacity_logits"])
  if antialiased:
    ratio = geometry["det_undilated"] / det
    positive = ratio > 0
    opacities = opacities * jnp.where(positive, jnp.sqrt(jnp.where(positive, ratio, 1.0)), 0.0)

  zero_culled = lambda x: _where_rows(visible_n, x, 0.0)
  return Projected(
      means2d=zero_culled(geometry["means2d"]),
      conics=zero_culled(conics),
      colors=zero_culled(colors),
      opacities=zero_culled(opacities),
      depths=zero_culled(geometry["means_c"][:, 2]),
      radii=jnp.where(visible_n, geometry["radius"], 0).astype(jnp.int32),
  )

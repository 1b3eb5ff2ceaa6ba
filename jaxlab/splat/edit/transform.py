"""Equivariant (similarity) transforms of Gaussian sets, and their composition and selection.

A Gaussian with mean mu, rotation R_i, scales sigma and SH colour c(d), moved by the
similarity x -> R (s x) + t, becomes the Gaussian the moved object would have been
reconstructed with: mean R (s mu) + t, rotation R R_i, scales s sigma, colour c'(R d) = c(d)
(degrees 1..3 rotated, DC and opacity unchanged). Rendering the moved scene from the moved
camera therefore gives the original image.
"""

from collections.abc import Sequence
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.splat.edit.sh_rotation import rotate_sh as _rotate_sh
from jaxlab.splat.gaussians import Gaussians, rotation_matrices
from jaxlab.splat.validate import is_concrete

# Tolerance of the host-side check that a concrete rotation is orthonormal with det +1.
_ROTATION_TOLERANCE = 1e-3


def matrix_to_quaternion(rotation_n33: jax.Array) -> jax.Array:
  """Unit quaternions (w, x, y, z), w >= 0, of rotation matrices [..., 3, 3].

  Shepperd's method: of the four ways to read the quaternion off the matrix, use the one
  whose pivot (4w^2, 4x^2, 4y^2 or 4z^2) is largest, so no division by a small number.
  """
  m = rotation_n33
  m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
  m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
  m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
  pivots_4 = jnp.stack([
      1.0 + m00 + m11 + m22,
      1.0 + m00 - m11 - m22,
      1.0 - m00 + m11 - m22,
      1.0 - m00 - m11 + m22,
  ], axis=-1)
  # Row p holds 4 q_p q; dividing by 2 sqrt(pivot_p) = 4 |q_p| gives +-q.
  candidates_44 = jnp.stack([
      jnp.stack([pivots_4[..., 0], m21 - m12, m02 - m20, m10 - m01], axis=-1),
      jnp.stack([m21 - m12, pivots_4[..., 1], m10 + m01, m02 + m20], axis=-1),
      jnp.stack([m02 - m20, m10 + m01, pivots_4[..., 2], m21 + m12], axis=-1),
      jnp.stack([m10 - m01, m02 + m20, m21 + m12, pivots_4[..., 3]], axis=-1),
  ], axis=-2)
  best = jnp.argmax(pivots_4, axis=-1)
  chosen_4 = jnp.take_along_axis(candidates_44, best[..., None, None], axis=-2)[..., 0, :]
  # The largest pivot is >= 1 for a rotation; the floor only guards garbage input.
  pivot = jnp.maximum(jnp.max(pivots_4, axis=-1, keepdims=True), 1e-12)
  quat_4 = chosen_4 * (0.5 * jax.lax.rsqrt(pivot))
  quat_4 = quat_4 / jnp.linalg.norm(quat_4, axis=-1, keepdims=True)
  return jnp.where(quat_4[..., :1] < 0, -quat_4, quat_4)


def _check_rotation(rotation_33) -> None:
  if np.shape(rotation_33) != (3, 3):
    raise ValueError(f"rotation_33 must have shape [3, 3]; got {np.shape(rotation_33)}")
  if is_concrete(rotation_33):
    r = np.asarray(rotation_33, np.float64)
    if not np.all(np.isfinite(r)):
      raise ValueError("rotation_33 has non-finite entries")
    if np.abs(r @ r.T - np.eye(3)).max() > _ROTATION_TOLERANCE or np.linalg.det(r) < 0:
      raise ValueError(f"rotation_33 must be a proper rotation (orthonormal, det +1); got\n{r}")


def transform_gaussians(
    gaussians: Gaussians,
    rotation_33: jax.Array,
    translation_3: jax.Array,
    scale: float | jax.Array = 1.0,
    *,
    rotate_sh: bool = True,
) -> Gaussians:
  """The Gaussians moved by x -> R (s x) + t (a similarity), appearance carried along.

  Args:
    gaussians: N Gaussians (every slot is moved; `active` is kept).
    rotation_33: [3, 3] proper rotation R.
    translation_3: [3] translation t.
    scale: uniform scale s > 0 (scalar).
    rotate_sh: rotate the SH of degree 1..3 with R (view-dependent colour follows the
      object). False leaves them as they are, as the released RoboSplat loop does.

  Returns:
    Gaussians with means R (s mu) + t, quats of R R_i (w >= 0), log_scales + log s, and
    opacity and DC unchanged. Under jit/vmap, R and t may be traced.
  """
  _check_rotation(rotation_33)
  if np.shape(translation_3) != (3,):
    raise ValueError(f"translation_3 must have shape [3]; got {np.shape(translation_3)}")
  if np.ndim(scale) != 0:
    raise ValueError(f"scale must be a scalar; got shape {np.shape(scale)}")
  if is_concrete(scale) and not float(np.asarray(scale)) > 0:
    raise ValueError(f"scale must be > 0; got {scale!r}")
  dtype = gaussians.means.dtype
  return _transform_gaussians(
      gaussians, jnp.asarray(rotation_33, dtype), jnp.asarray(translation_3, dtype), jnp.asarray(scale, dtype),
      rotate_sh=rotate_sh)


@functools.partial(jax.jit, static_argnames=("rotate_sh",))
def _transform_gaussians(gaussians, rotation_33, translation_3, scale, *, rotate_sh) -> Gaussians:
  """`transform_gaussians` on checked inputs, as one compiled program."""
  # Elementwise products, not dots: a GPU dot may round float32 to TF32.
  means_n3 = jnp.sum(rotation_33 * (scale * gaussians.means)[:, None, :], axis=-1) + translation_3
  rotations_n33 = jnp.sum(rotation_33[None, :, :, None] * rotation_matrices(gaussians.quats)[:, None, :, :], axis=2)
  sh = _rotate_sh(gaussians.sh, rotation_33) if rotate_sh else gaussians.sh
  return gaussians.replace(
      means=means_n3,
      quats=matrix_to_quaternion(rotations_n33).astype(gaussians.quats.dtype),
      log_scales=gaussians.log_scales + jnp.log(scale),
      sh=sh,
  )


def rigid_transform_44(
    gaussians: Gaussians, pose_44: jax.Array, *, scale: float | jax.Array = 1.0, rotate_sh: bool = True) -> Gaussians:
  """`transform_gaussians` with R and t read from a rigid 4x4 pose [R t; 0 1]."""
  if np.shape(pose_44) != (4, 4):
    raise ValueError(f"pose_44 must have shape [4, 4]; got {np.shape(pose_44)}")
  if not isinstance(pose_44, (jax.Array, np.ndarray)):
    pose_44 = np.asarray(pose_44, np.float32)
  return transform_gaussians(gaussians, pose_44[:3, :3], pose_44[:3, 3], scale, rotate_sh=rotate_sh)


def _pad_sh(sh_nk3: jax.Array, num_coeffs: int) -> jax.Array:
  """Zero coefficients appended up to `num_coeffs`: the same colour at a higher degree."""
  extra = num_coeffs - sh_nk3.shape[1]
  return sh_nk3 if extra == 0 else jnp.pad(sh_nk3, ((0, 0), (0, extra), (0, 0)))


def concat_gaussians(parts: Sequence[Gaussians]) -> Gaussians:
  """One Gaussian set holding every part in order (stacked along N); `active` is kept.

  Parts of lower SH degree are padded with zero coefficients to the highest degree.
  """
  parts = list(parts)
  if not parts:
    raise ValueError("concat_gaussians needs at least one Gaussians")
  for i, part in enumerate(parts):
    if not isinstance(part, Gaussians):
      raise ValueError(f"concat_gaussians: part {i} is a {type(part).__name__}, not Gaussians")
  if len(parts) == 1:
    return parts[0]
  num_coeffs = max(part.sh.shape[1] for part in parts)
  cat = lambda name: jnp.concatenate([getattr(part, name) for part in parts], axis=0)
  return Gaussians(
      means=cat("means"),
      log_scales=cat("log_scales"),
      quats=cat("quats"),
      opacity_logits=cat("opacity_logits"),
      sh=jnp.concatenate([_pad_sh(part.sh, num_coeffs) for part in parts], axis=0),
      active=cat("active"),
  )


def select_gaussians(gaussians: Gaussians, mask_n: jax.Array) -> Gaussians:
  """The same buffer with `active` cleared outside `mask_n` ([N] bool); shapes unchanged."""
  if np.shape(mask_n) != (gaussians.num,):
    raise ValueError(f"mask_n must have shape [{gaussians.num}] (one flag per Gaussian); got {np.shape(mask_n)}")
  return gaussians.replace(active=jnp.logical_and(gaussians.active, jnp.asarray(mask_n, jnp.bool_)))


def yaw_about_point(theta: float | jax.Array, x: float | jax.Array, y: float | jax.Array) -> jax.Array:
  """[4, 4] float32 rotation by `theta` about the vertical axis through (x, y): Tr(x, y) Rz(theta) Tr(-x, -y)."""
  theta, x, y = (jnp.asarray(v, jnp.float32) for v in (theta, x, y))
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  zero, one = jnp.zeros_like(theta), jnp.ones_like(theta)
  # Rz(theta) p + (I - Rz(theta)) c, with c = (x, y, 0).
  tx = x - (cos * x - sin * y)
  ty = y - (sin * x + cos * y)
  return jnp.stack([
      jnp.stack([cos, -sin, zero, tx]),
      jnp.stack([sin, cos, zero, ty]),
      jnp.stack([zero, zero, one, zero]),
      jnp.stack([zero, zero, zero, one]),
  ])


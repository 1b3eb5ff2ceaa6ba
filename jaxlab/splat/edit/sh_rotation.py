"""Rotation of real spherical-harmonic coefficients, in the basis order of `jaxlab.splat.sh_basis`.

For each degree l the SH of that degree span a space closed under rotation: there is a
(2l+1)x(2l+1) matrix D_l(R) with

    Y_l(R d) = D_l(R) Y_l(d)          for every unit direction d.

It is found by sampling: for a fixed set of well-spread unit directions s, the matrix
B = Y_l(S) (one sample per row, [S, 2l+1]) has full column rank, and stacking
Y_l(R s)^T = Y_l(s)^T D_l^T over the samples gives B_R = B D_l^T, so
D_l = (pinv(B) B_R)^T = B_R^T pinv(B)^T, with pinv computed once on the host in float64.
Any basis order or sign convention is handled by construction: the same `sh_basis` is
evaluated on both sides.

Why the coefficients map by D_l: a colour is c^T Y(d). We want c' with c'^T Y(R d) = c^T Y(d),
i.e. c'^T D Y(d) = c^T Y(d) for all d, so D^T c' = c. The basis is orthonormal on the sphere,
so D is orthogonal and c' = D^{-T} c = D c. The DC term (l = 0) is rotation invariant.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.splat.sh import MAX_SH_DEGREE, sh_basis, sh_degree_from_num_coeffs

# Fibonacci-sphere directions used to fit D_l; 64 well-spread points keep every Y_l(S)
# (at most 7 columns) near an orthogonal matrix, so the float32 fit loses almost nothing.
_NUM_SAMPLES = 64


def _fibonacci_directions(num: int) -> np.ndarray:
  """[num, 3] float64 unit vectors spread evenly over the sphere."""
  i = np.arange(num, dtype=np.float64) + 0.5
  z = 1.0 - 2.0 * i / num
  azimuth = np.pi * (1.0 + np.sqrt(5.0)) * i
  ring = np.sqrt(1.0 - z * z)
  return np.stack([ring * np.cos(azimuth), ring * np.sin(azimuth), z], axis=-1)


@functools.cache
def _samples_and_pinvs() -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
  """Sample directions [S, 3] and, per degree l = 1..3, pinv(B_l)^T as [S, 2l+1] (float64)."""
  dirs_s3 = _fibonacci_directions(_NUM_SAMPLES)
  # Evaluated eagerly in float64 even when first called inside a jit trace.
  with jax.ensure_compile_time_eval(), jax.enable_x64(True):
    basis_sk = np.asarray(sh_basis(dirs_s3, MAX_SH_DEGREE), np.float64)
  pinvs = tuple(np.linalg.pinv(basis_sk[:, l * l:(l + 1) ** 2]).T for l in range(1, MAX_SH_DEGREE + 1))
  return dirs_s3, pinvs


def _check_rotation_shape(rotation_33) -> None:
  if np.shape(rotation_33)[-2:] != (3, 3):
    raise ValueError(f"rotation must have shape [..., 3, 3]; got {np.shape(rotation_33)}")


def sh_rotation_matrices(rotation_33: jax.Array, degree: int = MAX_SH_DEGREE) -> tuple[jax.Array, ...]:
  """The blocks D_1 .. D_degree of a rotation, acting on coefficients of `sh_basis` order.

  Args:
    rotation_33: [..., 3, 3] rotation matrices (proper, orthonormal).
    degree: 0..3; 0 gives an empty tuple.

  Returns:
    (D_1 [..., 3, 3], D_2 [..., 5, 5], D_3 [..., 7, 7])[:degree], with Y_l(R d) = D_l Y_l(d).
  """
  _check_rotation_shape(rotation_33)
  if isinstance(degree, bool) or not isinstance(degree, int) or not 0 <= degree <= MAX_SH_DEGREE:
    raise ValueError(f"degree must be an int in 0..{MAX_SH_DEGREE}; got {degree!r}")
  if degree == 0:
    return ()
  rotation_33 = jnp.asarray(rotation_33)
  dtype = rotation_33.dtype if jnp.issubdtype(rotation_33.dtype, jnp.floating) else jnp.float32
  return _sh_rotation_matrices(rotation_33.astype(dtype), degree)


@functools.partial(jax.jit, static_argnums=(1,))
def _sh_rotation_matrices(rotation_33: jax.Array, degree: int) -> tuple[jax.Array, ...]:
  """`sh_rotation_matrices` on checked inputs, as one compiled program."""
  dirs_s3, pinvs = _samples_and_pinvs()
  dtype = rotation_33.dtype
  # R S, one rotated sample per row: (R s)_i = sum_j R_ij s_j.
  rotated_s3 = jnp.sum(rotation_33[..., None, :, :] * jnp.asarray(dirs_s3, dtype)[:, None, :], axis=-1)
  basis_sk = sh_basis(rotated_s3, degree)
  blocks = []
  for l in range(1, degree + 1):
    # D_l = B_R^T pinv(B)^T: [..., 2l+1, S] @ [S, 2l+1]; HIGHEST keeps a GPU off TF32.
    rotated_ks = jnp.swapaxes(basis_sk[..., l * l:(l + 1) ** 2], -1, -2)
    blocks.append(jnp.matmul(rotated_ks, jnp.asarray(pinvs[l - 1], dtype), precision=jax.lax.Precision.HIGHEST))
  return tuple(blocks)


def rotate_sh(sh_nk3: jax.Array, rotation_33: jax.Array) -> jax.Array:
  """SH coefficients of the colour field rotated by R: colour'(R d) = colour(d).

  Args:
    sh_nk3: [..., K, 3] coefficients, K in (1, 4, 9, 16); [..., 0, :] is DC (unchanged).
    rotation_33: [3, 3], or [..., 3, 3] broadcasting against the leading dims of `sh_nk3`
      (e.g. [N, 3, 3], one rotation per Gaussian).

  Returns:
    [..., K, 3] rotated coefficients, same dtype as `sh_nk3`.
  """
  if sh_nk3.ndim < 2 or sh_nk3.shape[-1] != 3:
    raise ValueError(f"sh must have shape [..., K, 3]; got {sh_nk3.shape}")
  _check_rotation_shape(rotation_33)
  if sh_degree_from_num_coeffs(sh_nk3.shape[-2]) == 0:
    return sh_nk3
  return _rotate_sh(sh_nk3, jnp.asarray(rotation_33, sh_nk3.dtype))


@jax.jit
def _rotate_sh(sh_nk3: jax.Array, rotation_33: jax.Array) -> jax.Array:
  """`rotate_sh` on checked inputs, as one compiled program."""
  blocks = _sh_rotation_matrices(rotation_33, sh_degree_from_num_coeffs(sh_nk3.shape[-2]))
  parts = [sh_nk3[..., :1, :]]
  for l, d_kk in enumerate(blocks, start=1):
    coeffs_k3 = sh_nk3[..., l * l:(l + 1) ** 2, :]
    # c'_i = sum_j D_ij c_j per colour channel, broadcasting D over the leading dims.
    parts.append(jnp.einsum("...ij,...jc->...ic", d_kk, coeffs_k3, precision=jax.lax.Precision.HIGHEST))
  return jnp.concatenate(parts, axis=-2).astype(sh_nk3.dtype)

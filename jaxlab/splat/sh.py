"""Real spherical harmonics up to degree 3, with the constants and signs of 3DGS.

The basis is the one of the INRIA 3DGS code and gsplat (`sh_utils.eval_sh`): real SH with
the Condon-Shortley phase, coefficients ordered by degree l, then order m = -l..l. A colour
is sum_k basis_k(dir) * coeff_k + 0.5, clamped at 0, so a zero DC coefficient is mid grey.
"""

import jax
import jax.numpy as jnp

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (
    1.0925484305920792,
    -1.0925484305920792,
    0.31539156525252005,
    -1.0925484305920792,
    0.5462742152960396,
)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)
MAX_SH_DEGREE = 3
# Coefficients per colour channel for degrees 0..3: (d + 1)^2.
VALID_NUM_COEFFS = (1, 4, 9, 16)


def num_sh_coeffs(degree: int) -> int:
  """(degree + 1)^2 coefficients per channel; degree must be 0..3."""
  if isinstance(degree, bool) or not isinstance(degree, int) or not 0 <= degree <= MAX_SH_DEGREE:
    raise ValueError(f"SH degree must be an int in 0..{MAX_SH_DEGREE}, got {degree!r}")
  return (degree + 1) ** 2


def sh_degree_from_num_coeffs(num_coeffs: int) -> int:
  """The degree d with (d + 1)^2 == num_coeffs; a ValueError names the valid counts."""
  if num_coeffs not in VALID_NUM_COEFFS:
    raise ValueError(
        f"SH coefficient count per channel must be one of {VALID_NUM_COEFFS} (degree 0..3),"
        f" got {num_coeffs}")
  return VALID_NUM_COEFFS.index(num_coeffs)


def normalize_directions(dirs_n3: jax.Array) -> jax.Array:
  """Unit vectors along `dirs_n3` ([..., 3]); a zero vector stays zero, with zero gradient."""
  squared_norm = jnp.sum(dirs_n3 * dirs_n3, axis=-1, keepdims=True)
  nonzero = squared_norm > 0
  # Double `where`: rsqrt never sees 0, so neither the value nor its gradient is inf/NaN.
  inverse_norm = jnp.where(nonzero, jax.lax.rsqrt(jnp.where(nonzero, squared_norm, 1.0)), 0.0)
  return dirs_n3 * inverse_norm


def sh_basis(unit_dirs_n3: jax.Array, degree: int) -> jax.Array:
  """The real SH basis at unit directions: [..., 3] -> [..., (degree + 1)^2]."""
  num_sh_coeffs(degree)
  x, y, z = unit_dirs_n3[..., 0], unit_dirs_n3[..., 1], unit_dirs_n3[..., 2]
  terms = [jnp.full_like(x, SH_C0)]
  if degree >= 1:
    terms += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
  if degree >= 2:
    xx, yy, zz = x * x, y * y, z * z
    terms += [
        SH_C2[0] * x * y,
        SH_C2[1] * y * z,
        SH_C2[2] * (2.0 * zz - xx - yy),
        SH_C2[3] * x * z,
        SH_C2[4] * (xx - yy),
    ]
  if degree >= 3:
    terms += [
        SH_C3[0] * y * (3.0 * xx - yy),
        SH_C3[1] * x * y * z,
        SH_C3[2] * y * (4.0 * zz - xx - yy),
        SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
        SH_C3[4] * x * (4.0 * zz - xx - yy),
        SH_C3[5] * z * (xx - yy),
        SH_C3[6] * x * (xx - 3.0 * yy),
    ]
  return jnp.stack(terms, axis=-1)


def sh_to_color(sh_nk3: jax.Array, dirs_n3: jax.Array) -> jax.Array:
  """View-dependent colour: sum_k basis_k(dir) * sh[k] + 0.5, clamped at 0.

  Args:
    sh_nk3: [..., K, 3] coefficients, K in (1, 4, 9, 16); the degree follows from K.
    dirs_n3: [..., 3] view directions (camera centre to point); normalised here, any
      length. A zero direction leaves only the DC term.

  Returns:
    [..., 3] colours, >= 0 (not clamped above: the rasterizer composites them as they are).
  """
  if sh_nk3.ndim < 2 or sh_nk3.shape[-1] != 3:
    raise ValueError(f"sh must have shape [..., K, 3]; got {sh_nk3.shape}")
  if dirs_n3.shape[-1:] != (3,):
    raise ValueError(f"dirs must have shape [..., 3]; got {dirs_n3.shape}")
  degree = sh_degree_from_num_coeffs(sh_nk3.shape[-2])
  basis_nk = sh_basis(normalize_directions(dirs_n3.astype(sh_nk3.dtype)), degree)
  # Multiply-and-sum, not a dot: a GPU dot may round float32 to TF32.
  color_n3 = jnp.sum(basis_nk[..., None] * sh_nk3, axis=-2)
  return jnp.maximum(color_n3 + 0.5, 0.0)


def rgb_to_sh_dc(rgb: jax.Array) -> jax.Array:
  """The DC coefficient whose degree-0 colour is `rgb` (0..1): (rgb - 0.5) / C0."""
  return (rgb - 0.5) / SH_C0


def sh_dc_to_rgb(dc: jax.Array) -> jax.Array:
  """The colour of a DC coefficient alone (before the clamp at 0): dc * C0 + 0.5."""
  return dc * SH_C0 + 0.5

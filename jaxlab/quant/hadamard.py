"""Random Hadamard rotations and the weight transforms that absorb a residual-stream rotation (QuaRot).

For any orthogonal Q [D, D], a pre-norm decoder computes the same function when the residual
stream x is replaced by x Q: RMSNorm with unit scale commutes with Q (||x Q|| = ||x||, so the
eps term is unchanged too), linears that read the stream (y = x W) take Q^T W, linears that
write it (y = h W) take W Q, and the embedding takes E Q. RMSNorm scales must first be fused
into the linears that read the norm's output. A randomized Hadamard Q spreads every outlier
channel over all D channels, which is what makes the rotated weights and activations easier
to quantize. The rotation of a whole MoE LM's parameter tree is `jaxlab.mxmoe.rotate_moe_lm`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_HIGHEST = jax.lax.Precision.HIGHEST


def _check_key(key) -> jax.Array:
  if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return key
  if isinstance(key, (jax.Array, np.ndarray)) and key.dtype == np.uint32 and key.shape == (2,):
    return key
  raise TypeError(f"key must be a jax PRNG key (jax.random.key or PRNGKey), got {type(key).__name__}")


def _sylvester(n: int) -> np.ndarray:
  """The unnormalized n x n Sylvester Hadamard matrix (entries +-1), n a power of two."""
  h = np.ones((1, 1), np.float32)
  while h.shape[0] < n:
    h = np.block([[h, h], [h, -h]])
  return h


def random_hadamard_matrix(n: int, key) -> jax.Array:
  """A random orthogonal [n, n] float32 rotation built from a Hadamard matrix.

  Write n = 2^a * m with m odd.
  * m = 1 (n a power of two): Q = diag(s) H_n / sqrt(n), with H_n the Sylvester Hadamard matrix
    and s a random +-1 vector (QuaRot's randomized Hadamard); every entry is +-1/sqrt(n).
  * m > 1: Q = kron(diag(s) H_{2^a} / sqrt(2^a), R_m), with R_m a Haar-random orthogonal m x m
    matrix (QR of a Gaussian matrix with the signs of R's diagonal fixed). A Kronecker product
    of orthogonal matrices is orthogonal, so Q is orthogonal in every case (to float32
    rounding; it is built in float64).

  Args:
    n: positive int.
    key: a jax PRNG key; the same key gives the same matrix.
  """
  if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
    raise ValueError(f"n must be a positive int, got {n!r}")
  key = _check_key(key)
  n = int(n)
  power = n & -n  # The largest power of two dividing n.
  odd = n // power
  sign_key, orthogonal_key = jax.random.split(key)
  signs = np.asarray(jax.random.rademacher(sign_key, (power,), dtype=jnp.float32), np.float64)
  q = signs[:, None] * _sylvester(power).astype(np.float64) / np.sqrt(power)
  if odd > 1:
    gaussian = np.asarray(jax.random.normal(orthogonal_key, (odd, odd), jnp.float32), np.float64)
    r_q, r_r = np.linalg.qr(gaussian)
    r_q = r_q * np.where(np.diag(r_r) < 0, -1.0, 1.0)[None, :]
    q = np.kron(q, r_q)
  return jnp.asarray(q, jnp.float32)


def _compute_dtype(*arrays) -> jnp.dtype:
  """float32, or float64 when an input already is (rotations of low-precision weights run in float32)."""
  return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


def _check_matrix(a, name: str, min_ndim: int = 2) -> None:
  if not hasattr(a, "shape") or not hasattr(a, "dtype"):
    raise TypeError(f"{name} must be an array, got {type(a).__name__}")
  if not jnp.issubdtype(a.dtype, jnp.floating):
    raise TypeError(f"{name} must be a float array, got dtype {a.dtype}")
  if a.ndim < min_ndim:
    raise ValueError(f"{name} must have at least {min_ndim} axes, got shape {a.shape}")


def _check_rotation(q_dd, d: int, name: str) -> None:
  _check_matrix(q_dd, "q_dd")
  if q_dd.shape != (d, d):
    raise ValueError(f"q_dd must have shape ({d}, {d}) to match {name}, got {q_dd.shape}")


def fuse_rms_norm_scale(norm_scale_d: jax.Array, w_dn: jax.Array) -> jax.Array:
  """diag(scale) @ w: rms_norm(x, scale) @ w == rms_norm(x, 1) @ the result.

  `w_dn` is [..., D, N] (leading axes, e.g. experts, allowed); the result keeps w's dtype (the
  product is formed in float32 or better). The norm's scale must then be set to ones.
  """
  _check_matrix(norm_scale_d, "norm_scale_d", 1)
  _check_matrix(w_dn, "w_dn")
  if norm_scale_d.ndim != 1 or norm_scale_d.shape[0] != w_dn.shape[-2]:
    raise ValueError(
        f"norm_scale_d must have shape ({w_dn.shape[-2]},) to match w_dn {w_dn.shape}, got {norm_scale_d.shape}"
    )
  dtype = _compute_dtype(norm_scale_d, w_dn)
  return (norm_scale_d.astype(dtype)[:, None] * w_dn.astype(dtype)).astype(w_dn.dtype)


def rotate_input_side(w_dn: jax.Array, q_dd: jax.Array) -> jax.Array:
  """Q^T @ w for a linear that reads the residual stream: x @ w == (x Q) @ (Q^T w). w is [..., D, N]."""
  _check_matrix(w_dn, "w_dn")
  _check_rotation(q_dd, w_dn.shape[-2], f"w_dn {w_dn.shape} (axis -2)")
  dtype = _compute_dtype(w_dn, q_dd)
  out = jnp.einsum("dc,...dn->...cn", q_dd.astype(dtype), w_dn.astype(dtype), precision=_HIGHEST)
  return out.astype(w_dn.dtype)


def rotate_output_side(w_nd: jax.Array, q_dd: jax.Array) -> jax.Array:
  """w @ Q for a linear (or bias [D]) that writes the residual stream: its output becomes (h w) Q.

  w is [..., N, D] or a bias [D].
  """
  _check_matrix(w_nd, "w_nd", 1)
  _check_rotation(q_dd, w_nd.shape[-1], f"w_nd {w_nd.shape} (axis -1)")
  dtype = _compute_dtype(w_nd, q_dd)
  return jnp.matmul(w_nd.astype(dtype), q_dd.astype(dtype), precision=_HIGHEST).astype(w_nd.dtype)


def rotate_embedding(e_vd: jax.Array, q_dd: jax.Array) -> jax.Array:
  """E @ Q: every token's embedding expressed in the rotated residual basis."""
  _check_matrix(e_vd, "e_vd")
  return rotate_output_side(e_vd, q_dd)

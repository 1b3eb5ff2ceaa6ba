"""The `Gaussians` pytree of 3D Gaussian splatting, its activations and constructors.

Parameters are stored raw, as in the INRIA code and its PLY files: log-scales, unnormalised
quaternions (w, x, y, z), opacity logits and SH coefficients. `active` marks the slots of a
fixed-capacity buffer that hold a Gaussian, so densification can change the count without
changing shapes (and recompiling).
"""

import functools
import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.splat.sh import num_sh_coeffs, rgb_to_sh_dc, sh_degree_from_num_coeffs
from jaxlab.splat.validate import as_float32, is_concrete

# (w, x, y, z) of the identity rotation.
IDENTITY_QUAT = (1.0, 0.0, 0.0, 0.0)
# INRIA's floor on the mean squared neighbour distance (simple-knn `clamp_min(..., 1e-7)`).
_MIN_NEIGHBOR_SQ_DIST = 1e-7
# Elements of one [chunk, N] distance block in `from_point_cloud` (float32: 128 MiB).
_KNN_BLOCK_ELEMENTS = 2**25


def normalize_quaternions(quats_n4: jax.Array) -> jax.Array:
  """Unit quaternions ([..., 4], (w, x, y, z)); a zero quaternion becomes the identity.

  The zero case uses a double `where`, so neither the value nor the gradient is NaN.
  """
  squared_norm = jnp.sum(quats_n4 * quats_n4, axis=-1, keepdims=True)
  nonzero = squared_norm > 0
  unit = quats_n4 * jax.lax.rsqrt(jnp.where(nonzero, squared_norm, 1.0))
  return jnp.where(nonzero, unit, jnp.asarray(IDENTITY_QUAT, quats_n4.dtype))


def rotation_matrices(quats_n4: jax.Array) -> jax.Array:
  """Rotation matrices [..., 3, 3] of quaternions [..., 4] (w, x, y, z), normalised here."""
  w, x, y, z = jnp.moveaxis(normalize_quaternions(quats_n4), -1, 0)
  rows = [
      1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
      2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
      2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
  ]
  return jnp.stack(rows, axis=-1).reshape(*quats_n4.shape[:-1], 3, 3)


@flax.struct.dataclass
class Gaussians:
  """N 3D Gaussians (some slots possibly inactive); a pytree of arrays.

  Attributes:
    means: [N, 3] world positions.
    log_scales: [N, 3] log of the standard deviations along the local axes.
    quats: [N, 4] rotations (w, x, y, z), normalised on use.
    opacity_logits: [N] pre-sigmoid opacities.
    sh: [N, (d + 1)^2, 3] SH coefficients, d <= 3; sh[:, 0] is the DC term.
    active: [N] bool; False slots are padding and never drawn.

  `active` is a bool leaf: differentiate with respect to the float fields (e.g. a dict of
  them, rebuilt with `gaussians.replace(**fields)`), or pass `allow_int=True` to `jax.grad`.
  """

  means: jax.Array
  log_scales: jax.Array
  quats: jax.Array
  opacity_logits: jax.Array
  sh: jax.Array
  active: jax.Array

  @property
  def num(self) -> int:
    """N, the number of slots (active or not)."""
    return self.means.shape[0]

  @property
  def sh_degree(self) -> int:
    """d, from the coefficient count (d + 1)^2."""
    return sh_degree_from_num_coeffs(self.sh.shape[1])

  def scales(self) -> jax.Array:
    """[N, 3] standard deviations: exp(log_scales)."""
    return jnp.exp(self.log_scales)

  def rotations(self) -> jax.Array:
    """[N, 4] unit quaternions (zero quaternions read as the identity)."""
    return normalize_quaternions(self.quats)

  def opacities(self) -> jax.Array:
    """[N] opacities in (0, 1): sigmoid(opacity_logits)."""
    return jax.nn.sigmoid(self.opacity_logits)

  def covariances(self) -> jax.Array:
    """[N, 3, 3] world-space covariances R S S^T R^T (symmetric PSD by construction)."""
    rotation_scale_n33 = rotation_matrices(self.quats) * self.scales()[:, None, :]
    return jnp.sum(rotation_scale_n33[:, :, None, :] * rotation_scale_n33[:, None, :, :], axis=-1)

  def num_active(self) -> jax.Array:
    """int32 scalar: how many slots hold a Gaussian."""
    return jnp.sum(self.active, dtype=jnp.int32)

  def pad_to(self, capacity: int) -> "Gaussians":
    """The same Gaussians in a buffer of `capacity` slots; new slots are inactive.

    Padding slots hold zeros (identity quaternion): harmless if they are ever drawn.
    """
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < self.num:
      raise ValueError(f"capacity must be an int >= the current N ({self.num}); got {capacity!r}")
    return self if capacity == self.num else _pad_to(self, capacity)


@functools.partial(jax.jit, static_argnames=("capacity",))
def _pad_to(gaussians: Gaussians, capacity: int) -> Gaussians:
  """`Gaussians.pad_to` as one compiled program."""
  extra = capacity - gaussians.num
  pad = lambda x, value=0: jnp.concatenate([x, jnp.full((extra, *x.shape[1:]), value, x.dtype)])
  quat_pad = jnp.broadcast_to(jnp.asarray(IDENTITY_QUAT, gaussians.quats.dtype), (extra, 4))
  return Gaussians(
      means=pad(gaussians.means),
      log_scales=pad(gaussians.log_scales),
      quats=jnp.concatenate([gaussians.quats, quat_pad]),
      opacity_logits=pad(gaussians.opacity_logits),
      sh=pad(gaussians.sh),
      active=pad(gaussians.active, False),
  )


def random_gaussians(
    rng: jax.Array,
    num: int,
    *,
    sh_degree: int = 3,
    mean_center: tuple[float, float, float] = (0.0, 0.0, 6.0),
    mean_std: float = 1.5,
    log_scale_mean: float = -4.0,
    log_scale_std: float = 0.5,
    opacity_logit_std: float = 1.0,
    sh_std: float = 0.3,
    dtype: jnp.dtype = jnp.float32,
) -> Gaussians:
  """Random Gaussians; the defaults are the benchmark scene of `bench/anchors.md`.

  means ~ N(mean_center, mean_std^2), quaternions normalised N(0, 1) 4-vectors,
  log-scales ~ N(log_scale_mean, log_scale_std^2), opacity logits ~ N(0, opacity_logit_std^2),
  all SH coefficients ~ N(0, sh_std^2). Every slot is active.
  """
  num_coeffs = num_sh_coeffs(sh_degree)
  if isinstance(num, bool) or not isinstance(num, int) or num < 0:
    raise ValueError(f"num must be an int >= 0; got {num!r}")
  return _random_gaussians(
      rng, num=num, num_coeffs=num_coeffs, mean_center=tuple(float(c) for c in mean_center), mean_std=mean_std,
      log_scale_mean=log_scale_mean, log_scale_std=log_scale_std, opacity_logit_std=opacity_logit_std,
      sh_std=sh_std, dtype=jnp.dtype(dtype))


@functools.partial(jax.jit, static_argnames=(
    "num", "num_coeffs", "mean_center", "mean_std", "log_scale_mean", "log_scale_std", "opacity_logit_std", "sh_std",
    "dtype"))
def _random_gaussians(rng, *, num, num_coeffs, mean_center, mean_std, log_scale_mean, log_scale_std, opacity_logit_std,
                      sh_std, dtype) -> Gaussians:
  """`random_gaussians` as one compiled program (eager, each op would compile on its own)."""
  # One draw sliced into fields: each separate draw would add its own PRNG code to compile.
  draws = jax.random.normal(rng, (num, 11 + 3 * num_coeffs), dtype)
  return Gaussians(
      means=jnp.asarray(mean_center, dtype) + mean_std * draws[:, 0:3],
      log_scales=log_scale_mean + log_scale_std * draws[:, 3:6],
      quats=normalize_quaternions(draws[:, 6:10]),
      opacity_logits=opacity_logit_std * draws[:, 10],
      sh=sh_std * draws[:, 11:].reshape(num, num_coeffs, 3),
      active=jnp.ones((num,), jnp.bool_),
  )


@functools.partial(jax.jit, static_argnames=("num_neighbors", "chunk"))
def _mean_squared_neighbor_distance(points_n3: jax.Array, *, num_neighbors: int, chunk: int) -> jax.Array:
  """[N] mean squared distance from each point to its `num_neighbors` nearest others.

  Exact brute force, `chunk` query rows at a time: memory O(N * chunk), not O(N^2).
  Coordinate differences are taken directly (no |a|^2 + |b|^2 - 2ab expansion), which
  would lose the small distances of dense clouds far from the origin to cancellation.
  """
  num = points_n3.shape[0]
  num_chunks = -(-num // chunk)
  queries = jnp.pad(points_n3, ((0, num_chunks * chunk - num), (0, 0)))
  point_ids = jnp.arange(num)

  def one_chunk(start):
    rows_c3 = jax.lax.dynamic_slice_in_dim(queries, start, chunk)
    sq_dist_cn = sum((rows_c3[:, None, a] - points_n3[None, :, a]) ** 2 for a in range(3))
    is_self = (start + jnp.arange(chunk))[:, None] == point_ids[None, :]
    sq_dist_cn = jnp.where(is_self, jnp.inf, sq_dist_cn)
    neg_nearest, _ = jax.lax.top_k(-sq_dist_cn, num_neighbors)
    return -jnp.mean(neg_nearest, axis=-1)

  per_chunk = jax.lax.map(one_chunk, jnp.arange(num_chunks) * chunk)
  return per_chunk.reshape(-1)[:num]


def from_point_cloud(
    points_n3: jax.Array,
    colors_n3: jax.Array,
    *,
    sh_degree: int = 3,
    capacity: int | None = None,
    initial_opacity: float = 0.1,
    knn_chunk: int | None = None,
) -> Gaussians:
  """Gaussians initialised from a coloured point cloud, as the INRIA code does.

  Each point becomes an isotropic Gaussian whose scale is the root of the mean squared
  distance to its 3 nearest neighbours (floored at 1e-7 before the root), with identity
  rotation, opacity `initial_opacity`, DC coefficient (rgb - 0.5) / C0 and higher SH zero.

  Args:
    points_n3: [N, 3] positions, N >= 2.
    colors_n3: [N, 3] RGB in 0..1.
    sh_degree: 0..3.
    capacity: total slots; None = N. Slots past N are inactive padding.
    initial_opacity: in (0, 1).
    knn_chunk: query rows per neighbour-search block; None keeps a block near 2^25 elements.

  Returns:
    float32 `Gaussians` with `capacity` slots, the first N active.
  """
  num_coeffs = num_sh_coeffs(sh_degree)
  points_n3 = as_float32(points_n3)
  colors_n3 = as_float32(colors_n3)
  if points_n3.ndim != 2 or points_n3.shape[1] != 3:
    raise ValueError(f"points must have shape [N, 3]; got {points_n3.shape}")
  if colors_n3.shape != points_n3.shape:
    raise ValueError(f"colors must have the shape of points, {points_n3.shape}; got {colors_n3.shape}")
  num = points_n3.shape[0]
  if num < 2:
    raise ValueError(f"from_point_cloud needs at least 2 points (scales come from neighbour distances); got {num}")
  if not 0.0 < initial_opacity < 1.0:
    raise ValueError(f"initial_opacity must be in (0, 1); got {initial_opacity}")
  if is_concrete(points_n3, colors_n3):
    for name, x in (("points", points_n3), ("colors", colors_n3)):
      bad = int(np.sum(~np.isfinite(np.asarray(x))))
      if bad:
        raise ValueError(f"{name} has {bad} non-finite value(s)")
  if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < num):
    raise ValueError(f"capacity must be None or an int >= the number of points ({num}); got {capacity!r}")
  if knn_chunk is None:
    knn_chunk = max(1, min(num, _KNN_BLOCK_ELEMENTS // num))
  if isinstance(knn_chunk, bool) or not isinstance(knn_chunk, int) or knn_chunk < 1:
    raise ValueError(f"knn_chunk must be a positive int; got {knn_chunk!r}")

  return _from_point_cloud(
      points_n3, colors_n3, num_coeffs=num_coeffs, capacity=num if capacity is None else capacity,
      opacity_logit=math.log(initial_opacity / (1.0 - initial_opacity)), knn_chunk=knn_chunk)


@functools.partial(jax.jit, static_argnames=("num_coeffs", "capacity", "opacity_logit", "knn_chunk"))
def _from_point_cloud(points_n3, colors_n3, *, num_coeffs, capacity, opacity_logit, knn_chunk) -> Gaussians:
  """`from_point_cloud` on checked inputs, as one compiled program."""
  num = points_n3.shape[0]
  sq_dist_n = _mean_squared_neighbor_distance(points_n3, num_neighbors=min(3, num - 1), chunk=knn_chunk)
  log_scale_n = 0.5 * jnp.log(jnp.maximum(sq_dist_n, _MIN_NEIGHBOR_SQ_DIST))
  sh = jnp.zeros((num, num_coeffs, 3), jnp.float32).at[:, 0].set(rgb_to_sh_dc(colors_n3))
  gaussians = Gaussians(
      means=points_n3,
      log_scales=jnp.repeat(log_scale_n[:, None], 3, axis=1),
      quats=jnp.broadcast_to(jnp.asarray(IDENTITY_QUAT, jnp.float32), (num, 4)),
      opacity_logits=jnp.full((num,), opacity_logit, jnp.float32),
      sh=sh,
      active=jnp.ones((num,), jnp.bool_),
  )
  return gaussians.pad_to(capacity)

"""GPTQ weight quantization (Frantar et al., 2023) into the packed layout of `jaxlab.quant_formats`.

A linear layer y = x @ W with W [K, N] (K inputs, N outputs) is quantized one input row at a
time; the rounding error of each row is pushed onto the rows not yet quantized, weighted by the
inverse Hessian H = (2/n) sum_t x_t^T x_t of the layer's calibration inputs, which minimizes
||X W - X W_q||_F far better than rounding each weight on its own (RTN).

As in the reference implementation:
* dead inputs (H_kk == 0, the input is always 0) get H_kk = 1 and their weight row is zeroed;
* damping lambda = damping * mean(diag H) is added to the diagonal;
* act_order processes rows by decreasing H_kk;
* static groups: each group's scale and zero come from the original weights (dead rows zeroed)
  before the sweep, so groups stay 128 consecutive rows in the original K order whatever the
  processing order (this is what lets act_order share the RTN storage layout);
* the upper Cholesky factor of H^-1 gives every row's update; updates are applied lazily in
  blocks of `block_size` rows.
Scales, zeros, code formulas and packing are exactly those of `rtn.quantize_weight`.

The sweep runs on the host in NumPy float64 (the rounding step itself in float32, as RTN does),
so it is not jittable; K of a few thousand takes seconds.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from jaxlab import _compat
from jaxlab.quant.rtn import _schemes_per_expert
from jaxlab.quant_formats.experts import ExpertWeights
from jaxlab.quant_formats.packing import pack_codes
from jaxlab.quant_formats.scheme import PACK_BLOCK, QuantScheme, parse_scheme
from jaxlab.quant_formats.weights import QuantizedWeight


@functools.partial(jax.jit, static_argnums=1)
def _gram(x_tk: jax.Array, in_features: int) -> jax.Array:
  """x^T x in float32 at full precision (no TF32 / bf16 passes), on x's device."""
  x_tk = x_tk.reshape(-1, in_features).astype(jnp.float32)
  return jnp.einsum("tk,tj->kj", x_tk, x_tk, precision=jax.lax.Precision.HIGHEST)


class HessianAccumulator:
  """Running H = (2/n) sum_t x_t^T x_t over calibration inputs x [..., K] (n counts rows, i.e. tokens).

  Each batch's x^T x is formed in float32 on x's device (full-precision matmul); the running
  mean is kept on the host in float64 and rescaled per batch, as the reference GPTQ does, so
  its magnitude stays that of one token's x^T x however many tokens arrive.
  """

  def __init__(self, in_features: int):
    if isinstance(in_features, bool) or not isinstance(in_features, int) or in_features <= 0:
      raise ValueError(f"in_features must be a positive int, got {in_features!r}")
    self.in_features = in_features
    self.num_samples = 0
    self._hessian_kk = np.zeros((in_features, in_features), np.float64)

  def update(self, x: jax.Array | np.ndarray) -> None:
    """Adds the rows of `x` [..., K] (leading axes flattened; zero rows allowed)."""
    if isinstance(x, _compat.Tracer):
      raise TypeError("HessianAccumulator.update runs on the host; call it outside jit with concrete x")
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
      raise TypeError(f"HessianAccumulator.update needs an array x, got {type(x).__name__}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise TypeError(f"HessianAccumulator.update needs float inputs x, got dtype {x.dtype}")
    if x.ndim < 1 or x.shape[-1] != self.in_features:
      raise ValueError(f"x must have shape [..., K={self.in_features}], got shape {x.shape}")
    rows = int(np.prod(x.shape[:-1]))
    if rows == 0:
      return
    gram_kk = np.asarray(_gram(jnp.asarray(x), self.in_features), np.float64)
    if not np.all(np.isfinite(gram_kk)):
      raise ValueError("HessianAccumulator.update: x contains non-finite values")
    total = self.num_samples + rows
    self._hessian_kk *= self.num_samples / total
    self._hessian_kk += (2.0 / total) * gram_kk
    self.num_samples = total

  @property
  def hessian(self) -> np.ndarray:
    """float64 [K, K] (a copy); all zeros before any update."""
    return self._hessian_kk.copy()


def _check_weight_kn(w_kn, what: str) -> None:
  if isinstance(w_kn, _compat.Tracer):
    raise TypeError(f"{what} runs on the host; call it outside jit with concrete weights")
  if not hasattr(w_kn, "shape") or not hasattr(w_kn, "dtype"):
    raise TypeError(f"{what} needs an array of weights, got {type(w_kn).__name__}")
  if not jnp.issubdtype(w_kn.dtype, jnp.floating):
    raise TypeError(f"{what} needs float weights, got dtype {w_kn.dtype}")


def _as_hessian(hessian_kk, in_features: int, name: str) -> np.ndarray:
  """float64 symmetric [K, K] copy of `hessian_kk`, or ValueError/TypeError naming `name`."""
  if isinstance(hessian_kk, HessianAccumulator):
    hessian_kk = hessian_kk.hessian
  if isinstance(hessian_kk, _compat.Tracer):
    raise TypeError(f"{name} must be concrete (GPTQ runs on the host, outside jit)")
  if not hasattr(hessian_kk, "shape") or not hasattr(hessian_kk, "dtype"):
    raise TypeError(f"{name} must be an array [K, K], got {type(hessian_kk).__name__}")
  if tuple(hessian_kk.shape) != (in_features, in_features):
    raise ValueError(
        f"{name} must have shape (K, K) = ({in_features}, {in_features}), got {tuple(hessian_kk.shape)}"
    )
  h_kk = np.array(hessian_kk, np.float64)
  if not np.all(np.isfinite(h_kk)):
    raise ValueError(f"{name} contains non-finite values")
  tolerance = 1e-5 * max(float(np.max(np.abs(np.diag(h_kk)), initial=0.0)), 1e-30)
  if np.max(np.abs(h_kk - h_kk.T), initial=0.0) > tolerance:
    raise ValueError(f"{name} must be symmetric (it is 2/n sum x^T x)")
  if np.any(np.diag(h_kk) < 0):
    raise ValueError(f"{name} has negative diagonal entries; a Hessian 2/n sum x^T x has none")
  return (h_kk + h_kk.T) / 2


def _check_options(scheme: QuantScheme, k: int, damping, act_order, static_groups, block_size, scale_dtype):
  if scheme.quantizes_weights and k % PACK_BLOCK:
    raise ValueError(f"scheme {scheme.name} needs K divisible by {PACK_BLOCK}, got K={k}")
  if isinstance(damping, bool) or not isinstance(damping, (int, float, np.number)) or not 0 <= damping < np.inf:
    raise ValueError(f"damping must be a finite float >= 0 (fraction of mean diag H), got {damping!r}")
  if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size <= 0:
    raise ValueError(f"block_size must be a positive int, got {block_size!r}")
  if not jnp.issubdtype(jnp.dtype(scale_dtype), jnp.floating):
    raise TypeError(f"scale_dtype must be a float dtype, got {scale_dtype}")
  if scheme.group_size == PACK_BLOCK and not static_groups:
    if act_order:
      raise ValueError(
          "act_order=True needs static_groups=True with 128-row groups: groups formed during an "
          "act-order sweep are not 128 consecutive K rows, which the packed layout requires"
      )
    if block_size % PACK_BLOCK:
      raise ValueError(f"static_groups=False needs block_size a multiple of {PACK_BLOCK}, got {block_size}")


def _group_params(w_cn: np.ndarray, scheme: QuantScheme, scale_dtype) -> tuple[np.ndarray, np.ndarray | None]:
  """(scale [N], zero [N] or None) of one group of rows, in scale_dtype: RTN's float32 formulas."""
  w_cn = w_cn.astype(np.float32)
  bits = scheme.w_bits
  if scheme.symmetric:
    scale_n = (np.max(np.abs(w_cn), axis=0) / np.float32(2 ** (bits - 1) - 1)).astype(scale_dtype)
    zero_n = None
  else:
    low_n, high_n = np.min(w_cn, axis=0), np.max(w_cn, axis=0)
    scale_n = ((high_n - low_n) / np.float32(2**bits - 1)).astype(scale_dtype)
    zero_n = low_n.astype(scale_dtype)
  # A zero scale would divide by 0 (RTN's rule: such a group gets s = 1).
  scale_n = np.where(scale_n == 0, np.ones_like(scale_n), scale_n)
  return scale_n, zero_n


def _inverse_upper_cholesky(h_kk: np.ndarray) -> np.ndarray:
  """Upper-triangular U with U^T U = H^-1 (positive diagonal), via one Cholesky of H.

  With J the row reversal, J H J = L L^T gives H = R R^T for the upper R = J L J, so
  H^-1 = (R^-1)^T R^-1 and U = R^-1: no explicit inverse of H is formed.
  """
  lower_kk = np.linalg.cholesky(h_kk[::-1, ::-1])
  upper_kk = np.ascontiguousarray(lower_kk[::-1, ::-1])
  eye_kk = np.eye(h_kk.shape[0])
  return scipy.linalg.solve_triangular(upper_kk, eye_kk, lower=False, check_finite=False)


def gptq_quantize(
    w_kn: jax.Array | np.ndarray,
    hessian_kk,
    scheme: QuantScheme | str,
    *,
    damping: float = 0.01,
    act_order: bool = True,
    static_groups: bool = True,
    block_size: int = 128,
    scale_dtype=jnp.float16,
) -> QuantizedWeight:
  """GPTQ-quantizes `w_kn` [K, N] for inputs with Hessian `hessian_kk` [K, K]; layout as `rtn.quantize_weight`.

  Args:
    w_kn: float weights, y = x @ w.
    hessian_kk: (2/n) sum x^T x over the layer's calibration inputs (any positive multiple
      works: damping is relative), an array or a `HessianAccumulator`. An all-zero Hessian
      (no calibration data at all, e.g. an expert no calibration token was routed to) carries
      no information and gives plain RTN instead of zeroing every row.
    scheme: a weight scheme (name or QuantScheme). bf16 returns `w_kn` unchanged, like RTN.
    damping: fraction of mean(diag H) added to the diagonal.
    act_order: quantize rows by decreasing diag(H) (the stored layout keeps the original order).
    static_groups: group scales/zeros from the original weights before the sweep. False (only
      with act_order=False for 128-row groups) takes each group's scale/zero from the updated
      weights when the sweep reaches it, as GPTQ without static groups does.
    block_size: rows per lazy batch update (results do not depend on it beyond float rounding).
    scale_dtype: dtype of scales and zeros.

  Returns:
    A `QuantizedWeight` that `jaxlab.quant_formats.dequantize_weight` reads.

  Raises:
    TypeError: non-float or traced weights, bad scale_dtype.
    ValueError: w not [K, N], K not a multiple of 128, Hessian not [K, K], non-finite or
      asymmetric, bad options, or H + damping not positive definite.
  """
  scheme = parse_scheme(scheme)
  _check_weight_kn(w_kn, "gptq_quantize")
  if w_kn.ndim != 2:
    raise ValueError(f"gptq_quantize needs w of shape [K, N], got shape {w_kn.shape}")
  k, n = w_kn.shape
  if not scheme.quantizes_weights:
    return QuantizedWeight(packed=w_kn, scale=None, zero=None, scheme=scheme, in_features=k, out_features=n)
  _check_options(scheme, k, damping, act_order, static_groups, block_size, scale_dtype)
  h_kk = _as_hessian(hessian_kk, k, "hessian_kk")
  w64_kn = np.array(w_kn, np.float64)
  if not np.all(np.isfinite(w64_kn)):
    raise ValueError("gptq_quantize: w_kn contains non-finite values")
  codes_kn, scale_gn, zero_gn = _gptq(
      w64_kn, h_kk, scheme, float(damping), bool(act_order), bool(static_groups), block_size,
      np.dtype(scale_dtype),
  )
  if scheme.symmetric and scheme.w_bits == 8:
    codes_kn = codes_kn.astype(np.int8)
  elif scheme.symmetric:
    codes_kn = (codes_kn + 2 ** (scheme.w_bits - 1)).astype(np.uint8)
  else:
    codes_kn = codes_kn.astype(np.uint8)
  return QuantizedWeight(
      packed=pack_codes(jnp.asarray(codes_kn), scheme.w_bits),
      scale=jnp.asarray(scale_gn),
      zero=None if zero_gn is None else jnp.asarray(zero_gn),
      scheme=scheme,
      in_features=k,
      out_features=n,
  )


def _gptq(w_kn, h_kk, scheme, damping, act_order, static_groups, block_size, scale_dtype):
  """Signed integer codes [K, N] (qs for symmetric), scale [G, N], zero [G, N] or None; inputs validated."""
  k, n = w_kn.shape
  group = k if scheme.group_size == -1 else PACK_BLOCK
  if not np.any(h_kk):
    h_kk = np.eye(k)  # No calibration data: the identity makes GPTQ exactly RTN.
  dead_k = np.diag(h_kk) == 0
  h_kk[dead_k, dead_k] = 1.0
  w_kn[dead_k] = 0.0

  scale_gn = np.empty((k // group, n), scale_dtype)
  zero_gn = None if scheme.symmetric else np.empty((k // group, n), scale_dtype)

  def set_group(g: int, w_cn: np.ndarray) -> None:
    scale_gn[g], zero = _group_params(w_cn, scheme, scale_dtype)
    if zero_gn is not None:
      zero_gn[g] = zero

  dynamic = not static_groups and group == PACK_BLOCK
  if not dynamic:
    for g in range(k // group):
      set_group(g, w_kn[g * group:(g + 1) * group])

  perm_k = np.argsort(-np.diag(h_kk), kind="stable") if act_order else np.arange(k)
  w_kn = w_kn[perm_k]
  h_kk = h_kk[np.ix_(perm_k, perm_k)]
  h_kk[np.diag_indices(k)] += damping * np.mean(np.diag(h_kk))
  try:
    u_kk = _inverse_upper_cholesky(h_kk)
  except np.linalg.LinAlgError as e:
    raise ValueError(
        f"hessian_kk plus damping {damping} * mean(diag) is not positive definite; raise damping"
    ) from e

  if scheme.symmetric:
    q_low, q_high = -(2 ** (scheme.w_bits - 1) - 1), 2 ** (scheme.w_bits - 1) - 1
  else:
    q_low, q_high = 0, 2**scheme.w_bits - 1
  codes_kn = np.empty((k, n), np.int32)
  for i1 in range(0, k, block_size):
    i2 = min(i1 + block_size, k)
    w_bn = w_kn[i1:i2].copy()
    err_bn = np.empty_like(w_bn)
    u_bb = u_kk[i1:i2, i1:i2]
    for i in range(i2 - i1):
      row = perm_k[i1 + i]
      if dynamic and row % group == 0:
        set_group(row // group, w_bn[i:i + group])
      s32_n = scale_gn[row // group].astype(np.float32)
      # The rounding step is RTN's float32 arithmetic, so an unchanged row gets RTN's codes.
      w32_n = w_bn[i].astype(np.float32)
      if zero_gn is None:
        q_n = np.clip(np.rint(w32_n / s32_n), q_low, q_high)
        dq_n = q_n.astype(np.float64) * s32_n
      else:
        z32_n = zero_gn[row // group].astype(np.float32)
        q_n = np.clip(np.rint((w32_n - z32_n) / s32_n), q_low, q_high)
        dq_n = q_n.astype(np.float64) * s32_n + z32_n
      codes_kn[i1 + i] = q_n
      err_n = (w_bn[i] - dq_n) / u_bb[i, i]
      w_bn[i + 1:] -= np.outer(u_bb[i, i + 1:], err_n)
      err_bn[i] = err_n
    w_kn[i2:] -= u_kk[i1:i2, i2:].T @ err_bn
  codes_kn[perm_k] = codes_kn.copy()
  return codes_kn, scale_gn, zero_gn


def gptq_quantize_experts(
    w_ekn: jax.Array | np.ndarray,
    hessians_ekk,
    schemes: QuantScheme | str | Sequence[QuantScheme | str],
    *,
    damping: float = 0.01,
    act_order: bool = True,
    static_groups: bool = True,
    block_size: int = 128,
    scale_dtype=jnp.float16,
) -> ExpertWeights:
  """GPTQ for each expert of `w_ekn` [E, K, N] with its own Hessian; stacks as `rtn.quantize_experts`.

  Args:
    w_ekn: [E, K, N] float weights.
    hessians_ekk: [E, K, K] array, or a sequence of E Hessians (arrays or
      `HessianAccumulator`s; None is allowed for bf16 experts, whose Hessian is unused).
    schemes: one scheme for every expert, or a sequence of E. bf16 experts keep w's dtype.
    damping, act_order, static_groups, block_size, scale_dtype: as `gptq_quantize`.
  """
  _check_weight_kn(w_ekn, "gptq_quantize_experts")
  if w_ekn.ndim != 3:
    raise ValueError(f"gptq_quantize_experts needs w of shape [E, K, N], got shape {w_ekn.shape}")
  num_experts, k, _ = w_ekn.shape
  if num_experts == 0:
    raise ValueError("gptq_quantize_experts needs at least one expert, got E=0")
  per_expert = _schemes_per_expert(schemes, num_experts)
  if isinstance(hessians_ekk, Sequence) and not isinstance(hessians_ekk, (str, bytes)):
    if len(hessians_ekk) != num_experts:
      raise ValueError(f"hessians_ekk has {len(hessians_ekk)} entries for {num_experts} experts")
    hessians = list(hessians_ekk)
  elif hasattr(hessians_ekk, "shape"):
    if tuple(hessians_ekk.shape) != (num_experts, k, k):
      raise ValueError(
          f"hessians_ekk must have shape (E, K, K) = ({num_experts}, {k}, {k}), got {tuple(hessians_ekk.shape)}"
      )
    hessians = [hessians_ekk[e] for e in range(num_experts)]
  else:
    raise TypeError(
        f"hessians_ekk must be an [E, K, K] array or a sequence of E Hessians, got {type(hessians_ekk).__name__}"
    )
  # Everything is checked before the first (slow) sweep starts; the checked copies are not
  # kept (E float64 [K, K] matrices can take gigabytes).
  for e, (scheme, hessian) in enumerate(zip(per_expert, hessians)):
    if scheme.quantizes_weights:
      _check_options(scheme, k, damping, act_order, static_groups, block_size, scale_dtype)
      if hessian is None:
        raise ValueError(f"hessians_ekk[{e}] is None but expert {e} is quantized ({scheme.name})")
      _as_hessian(hessian, k, f"hessians_ekk[{e}]")

  distinct = list(dict.fromkeys(per_expert))
  expert_scheme = tuple(distinct.index(s) for s in per_expert)
  members = [[e for e in range(num_experts) if expert_scheme[e] == index] for index in range(len(distinct))]
  stacks = []
  for scheme, experts in zip(distinct, members):
    if not scheme.quantizes_weights:
      packed = w_ekn if len(experts) == num_experts else w_ekn[np.asarray(experts)]
      stacks.append(QuantizedWeight(packed, None, None, scheme, k, w_ekn.shape[2]))
      continue
    quantized = [
        gptq_quantize(
            w_ekn[e], hessians[e], scheme, damping=damping, act_order=act_order,
            static_groups=static_groups, block_size=block_size, scale_dtype=scale_dtype,
        )
        for e in experts
    ]
    stacks.append(jax.tree.map(lambda *leaves: jnp.stack(leaves), *quantized))
  expert_slot = tuple(members[expert_scheme[e]].index(e) for e in range(num_experts))
  return ExpertWeights(tuple(stacks), expert_scheme, expert_slot)

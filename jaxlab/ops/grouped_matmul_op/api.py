"""Public grouped-matmul op: `grouped_matmul`, dispatched to XLA or one Pallas (Triton) launch.

Rows of `lhs` are sorted by group (expert); group g owns the next `group_sizes[g]` rows and is
multiplied by expert g's weight matrix. Each expert may carry its own quantization scheme
(`jaxlab.quant_formats.ExpertWeights`); the kernel runs every scheme in one `pallas_call`.

Conventions, for every implementation:
  * rows past `sum(group_sizes)` belong to no group and come out as zeros;
  * if `sum(group_sizes) > M` the groups are cut at row M (raised as an error when
    `group_sizes` is concrete, i.e. outside `jax.jit`);
  * with `group_offset=o`, `rhs` holds experts o .. o + G_rhs - 1 of the G groups (one shard of
    an expert-parallel layer); rows of the other groups come out as zeros.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import _compat
from jaxlab.ops import registry
from jaxlab.ops.grouped_matmul_op.reference import grouped_matmul_reference
from jaxlab.quant_formats.experts import ExpertWeights
from jaxlab.ops.grouped_matmul_op.groups import cut_at_rows
from kernels_pallas.grouped_matmul.config import GroupedMatmulConfig

_FLOAT_DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)


def _xla(lhs_mk, rhs, group_sizes_g, *, group_offset, out_dtype, config, interpret):
  del config, interpret  # Tile shapes mean nothing to XLA.
  sizes_g = cut_at_rows(group_sizes_g, lhs_mk.shape[0])
  return grouped_matmul_reference(lhs_mk, rhs, sizes_g, group_offset=group_offset, out_dtype=out_dtype)


def _pallas_triton(lhs_mk, rhs, group_sizes_g, *, group_offset, out_dtype, config, interpret):
  registry.require_platform("pallas_triton", interpret=interpret)
  if lhs_mk.shape[0] == 0 or lhs_mk.shape[1] == 0:
    raise NotImplementedError(f"pallas_triton needs a non-empty lhs, got shape {lhs_mk.shape}")
  kernel = registry.load_kernel("pallas_triton", "kernels_pallas.grouped_matmul.triton")
  experts = rhs if isinstance(rhs, ExpertWeights) else None
  if experts is None:
    return kernel.dense_grouped_matmul(
        lhs_mk, rhs, group_sizes_g, group_offset, out_dtype=out_dtype, config=config, interpret=interpret
    )
  return kernel.mixed_grouped_matmul(
      lhs_mk, experts, group_sizes_g, group_offset, out_dtype=out_dtype, config=config, interpret=interpret
  )


_GROUPED_MATMUL = registry.Op("grouped_matmul", {"xla": _xla, "pallas_triton": _pallas_triton})


def _is_concrete(x) -> bool:
  """A value known now (not a tracer, not a ShapeDtypeStruct): checks on its contents can run."""
  return isinstance(x, (int, np.integer, np.ndarray, jax.Array)) and not isinstance(x, _compat.Tracer)


def _check_arguments(lhs_mk, rhs, group_sizes_g, group_offset, config) -> tuple[int, int]:
  """Validates shapes and dtypes; returns (number of local experts, output features)."""
  if lhs_mk.ndim != 2:
    raise ValueError(f"grouped_matmul needs lhs of shape [M, K], got shape {lhs_mk.shape}")
  if lhs_mk.dtype not in _FLOAT_DTYPES:
    raise TypeError(f"grouped_matmul needs a float32/bfloat16/float16 lhs, got {lhs_mk.dtype}")
  k = lhs_mk.shape[1]
  if isinstance(rhs, ExpertWeights):
    num_local, rhs_k, n = rhs.num_experts, rhs.in_features, rhs.out_features
    for scheme, stack in zip(rhs.schemes, rhs.stacks):
      if scheme.w_bits == 16 and stack.packed.dtype != lhs_mk.dtype:
        raise TypeError(
            f"grouped_matmul: unquantized experts are {stack.packed.dtype} but lhs is {lhs_mk.dtype}; "
            "cast one so they match"
        )
  elif hasattr(rhs, "shape") and hasattr(rhs, "dtype"):
    if rhs.ndim != 3:
      raise ValueError(f"grouped_matmul needs rhs of shape [G, K, N] or ExpertWeights, got shape {rhs.shape}")
    if rhs.dtype != lhs_mk.dtype:
      raise TypeError(f"grouped_matmul needs lhs and rhs of one dtype, got {lhs_mk.dtype} and {rhs.dtype}")
    num_local, rhs_k, n = rhs.shape
  else:
    raise TypeError(f"grouped_matmul needs rhs as a [G, K, N] array or ExpertWeights, got {type(rhs).__name__}")
  if rhs_k != k:
    raise ValueError(f"grouped_matmul: lhs has K={k} columns but rhs has K={rhs_k} rows per expert")
  if group_sizes_g.ndim != 1 or not jnp.issubdtype(group_sizes_g.dtype, jnp.integer):
    raise ValueError(
        f"grouped_matmul needs group_sizes as a 1-D integer array, got {group_sizes_g.dtype}{group_sizes_g.shape}"
    )
  num_groups = group_sizes_g.shape[0]
  if num_groups < num_local:
    raise ValueError(f"grouped_matmul: {num_groups} group sizes for {num_local} experts in rhs")
  if _is_concrete(group_offset):
    offset = int(np.asarray(group_offset))
    if offset < 0 or offset + num_local > num_groups:
      raise ValueError(
          f"grouped_matmul: group_offset={offset} with {num_local} local experts exceeds {num_groups} groups"
      )
  if _is_concrete(group_sizes_g):
    sizes = np.asarray(group_sizes_g)
    if (sizes < 0).any():
      raise ValueError(f"grouped_matmul: group_sizes must be >= 0, got {sizes.tolist()}")
    if sizes.sum() > lhs_mk.shape[0]:
      raise ValueError(
          f"grouped_matmul: group_sizes sum to {int(sizes.sum())} > M={lhs_mk.shape[0]} rows of lhs "
          "(rows past the sum are allowed and come out zero; more groups than rows are not)"
      )
  if config is not None and not isinstance(config, GroupedMatmulConfig):
    raise TypeError(f"config must be a GroupedMatmulConfig or None, got {type(config).__name__}")
  return num_local, n


def grouped_matmul(
    lhs_mk: jax.Array,
    rhs: jax.Array | ExpertWeights,
    group_sizes_g: jax.Array,
    *,
    group_offset: int | jax.Array = 0,
    preferred_element_type=None,
    implementation: registry.ImplementationArg = None,
    interpret: bool = False,
    config: GroupedMatmulConfig | None = None,
) -> jax.Array:
  """out[m] = lhs[m] @ W[g(m)] where g(m) is the group owning row m.

  Args:
    lhs_mk: [M, K] float32/bfloat16/float16 rows, sorted by group.
    rhs: [G_rhs, K, N] float weights (same dtype as lhs; differentiable), or
      `jaxlab.quant_formats.ExpertWeights` with a quantization scheme per expert. Schemes that quantize
      activations (wXa8, wXa4) quantize the rows of their groups dynamically (symmetric,
      per token or per 128 columns).
    group_sizes_g: [G] integer rows per group, G >= G_rhs.
    group_offset: index of rhs's first expert among the G groups (expert parallelism).
    preferred_element_type: output dtype; default lhs's dtype. Accumulation is float32.
    implementation: None (best available), a name from `jaxlab.ops.IMPLEMENTATIONS`, or a
      sequence of names tried in order.
    interpret: run Pallas implementations in the Pallas interpreter (any backend, slow).
    config: tile shapes per scheme for the kernel; None picks `GroupedMatmulConfig.heuristic`.

  Returns:
    [M, N] array; zeros in rows that belong to no local group.

  Raises:
    ValueError / TypeError: bad shapes or dtypes, negative sizes or sizes summing past M.
    registry.NoImplementationError: no requested implementation could serve the call.
  """
  _check_arguments(lhs_mk, rhs, group_sizes_g, group_offset, config)
  out_dtype = jnp.dtype(preferred_element_type or lhs_mk.dtype)
  # Each implementation cuts the groups at row M itself (the kernel does it in each program).
  return _GROUPED_MATMUL(
      lhs_mk, rhs, group_sizes_g, group_offset=group_offset, out_dtype=out_dtype, config=config,
      implementation=implementation, interpret=interpret,
  )


def resolve_grouped_matmul(lhs_mk, rhs, group_sizes_g, *, group_offset=0, preferred_element_type=None,
                           implementation=None, interpret=False, config=None) -> str:
  """Name of the implementation `grouped_matmul` would run for these arguments; runs nothing."""
  _check_arguments(lhs_mk, rhs, group_sizes_g, group_offset, config)
  out_dtype = jnp.dtype(preferred_element_type or lhs_mk.dtype)
  return _GROUPED_MATMUL.resolve(
      lhs_mk, rhs, group_sizes_g, group_offset=group_offset, out_dtype=out_dtype, config=config,
      implementation=implementation, interpret=interpret,
  )

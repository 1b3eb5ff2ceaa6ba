"""XLA reference for `grouped_matmul`: dequantize, fake-quantize activations, one ragged dot.

Float32 math throughout. Quantized experts are dequantized exactly (`jaxlab.quant_formats`),
and the rows of each group whose scheme quantizes activations are fake-quantized with that
scheme's dynamic symmetric scales before the product: the same values the kernel feeds its
integer dot products.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlab.quant_formats import activations as act_quant
from jaxlab.quant_formats.decode import dequantize_experts
from jaxlab.quant_formats.experts import ExpertWeights
from jaxlab.ops.grouped_matmul_op.groups import group_ids_of_rows


def _fake_quantize_rows(lhs_mk, group_m, experts: ExpertWeights, group_offset):
  """Rows of groups whose scheme quantizes activations, replaced by their fake-quantized values."""
  lhs_operand = lhs_mk.astype(jnp.float32)
  local_m = group_m - group_offset
  for scheme_index, scheme in enumerate(experts.schemes):
    if scheme.a_bits >= 16:
      continue
    owners = [e for e, s in enumerate(experts.expert_scheme) if s == scheme_index]
    rows_m = jnp.isin(local_m, jnp.asarray(owners, jnp.int32))
    fake_mk = act_quant.fake_quantize_activations(lhs_operand, scheme.a_bits, scheme.group_size)
    lhs_operand = jnp.where(rows_m[:, None], fake_mk, lhs_operand)
  return lhs_operand


def grouped_matmul_reference(lhs_mk, rhs, group_sizes_g, *, group_offset, out_dtype):
  """out[m] = lhs[m] @ W[group(m)] in float32; zero for rows outside the local groups.

  Args:
    lhs_mk: [M, K] float.
    rhs: [G_local, K, N] float array or `ExpertWeights` with G_local experts.
    group_sizes_g: [G] int32, G >= G_local.
    group_offset: int or int32 scalar: the global index of rhs's first expert.
    out_dtype: dtype of the result.
  """
  num_rows = lhs_mk.shape[0]
  group_sizes_g = group_sizes_g.astype(jnp.int32)
  if isinstance(rhs, ExpertWeights):
    group_m = group_ids_of_rows(group_sizes_g, num_rows)
    lhs_operand = _fake_quantize_rows(lhs_mk, group_m, rhs, group_offset)
    rhs_gkn = dequantize_experts(rhs, jnp.float32)
  elif lhs_mk.dtype in (jnp.bfloat16, jnp.float16):
    # A product of two 16-bit floats is exact in float32, so 16-bit operands with float32
    # accumulation are float32 math; upcasting first would make XLA:GPU lower the ragged
    # dot as a dense dot over every expert.
    lhs_operand, rhs_gkn = lhs_mk, rhs
  else:
    lhs_operand = lhs_mk.astype(jnp.float32)
    rhs_gkn = rhs.astype(jnp.float32)
  num_local, k, n = rhs_gkn.shape
  product = lambda lhs, rhs, sizes: jax.lax.ragged_dot(
      lhs, rhs, sizes, precision=jax.lax.Precision.HIGHEST, preferred_element_type=jnp.float32
  )  # On GPU a float32 ragged dot runs as one dense dot over every expert: slow, but exact.
  if isinstance(group_offset, int) and group_offset == 0 and num_local == group_sizes_g.shape[0]:
    return product(lhs_operand, rhs_gkn, group_sizes_g).astype(out_dtype)  # Rows past the sum come out zero.
  # The rows before and after the local groups go to two all-zero experts.
  local_sizes_g = jax.lax.dynamic_slice_in_dim(group_sizes_g, group_offset, num_local)
  starts = jnp.cumsum(group_sizes_g) - group_sizes_g
  rows_before = starts[group_offset]
  rows_after = jnp.sum(group_sizes_g) - rows_before - jnp.sum(local_sizes_g)
  sizes = jnp.concatenate([rows_before[None], local_sizes_g, rows_after[None]]).astype(jnp.int32)
  zero_kn = jnp.zeros((1, k, n), rhs_gkn.dtype)
  out_mn = product(lhs_operand, jnp.concatenate([zero_kn, rhs_gkn, zero_kn]), sizes)
  return out_mn.astype(out_dtype)

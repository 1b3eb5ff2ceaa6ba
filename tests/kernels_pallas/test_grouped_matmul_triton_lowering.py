"""The grouped-matmul kernels lower through Triton for CUDA, checked on a machine without a GPU.

Interpret-mode tests accept shapes and operations Triton rejects (non-power-of-two tiles,
unsigned dot operands); lowering for the "cuda" platform runs the real Triton lowering.
"""

import dataclasses

import jax
import jax.numpy as jnp
import pytest

from kernels_pallas.grouped_matmul.config import GroupedMatmulConfig
from jaxlab.quant import rtn
from kernels_pallas.grouped_matmul import triton as gmm_triton

# DeepSeek-V2-Lite's expert up-projection (gate and up fused), decode and prefill row counts.
NUM_EXPERTS, K, N = 64, 2048, 2816


def _lower_for_cuda(fn, *specs) -> str:
  return jax.jit(fn).trace(*specs).lower(lowering_platforms=("cuda",)).as_text()


def _experts_spec(schemes):
  weights = jax.ShapeDtypeStruct((NUM_EXPERTS, K, N), jnp.float32)
  return jax.eval_shape(lambda w: rtn.quantize_experts(w.astype(jnp.bfloat16), schemes), weights)


@pytest.mark.parametrize("num_rows", [384, 49152])
@pytest.mark.parametrize(
    "schemes",
    [
        "w8a16_g-1_asym", "w4a16_g128_asym", "w4a16_g-1_sym", "w3a16_g128_asym", "w2a16_g128_asym", "w1a16_g128_asym",
        "w8a8_g-1_sym", "w8a8_g128_sym", "w4a4_g-1_sym", "w4a4_g128_sym",
        ("bf16", "w8a16_g-1_asym", "w4a16_g128_asym", "w8a8_g-1_sym") * (NUM_EXPERTS // 4),
    ],
)
def test_quantized_launch_is_one_triton_call(schemes, num_rows):
  experts = _experts_spec(schemes)
  config = GroupedMatmulConfig.heuristic(experts.schemes, num_rows, NUM_EXPERTS)

  def forward(lhs, experts, sizes):
    return gmm_triton.mixed_grouped_matmul(lhs, experts, sizes, 0, out_dtype=jnp.bfloat16, config=config,
                                           interpret=False)

  lhs = jax.ShapeDtypeStruct((num_rows, K), jnp.bfloat16)
  sizes = jax.ShapeDtypeStruct((NUM_EXPERTS,), jnp.int32)
  assert _lower_for_cuda(forward, lhs, experts, sizes).count("xla.gpu.triton") == 1


@pytest.mark.parametrize("bitcast_unpack, weights_first", [(True, True), (False, True), (True, False)])
def test_weight_only_tile_options_lower(bitcast_unpack, weights_first):
  experts = _experts_spec(("w4a16_g128_asym", "w4a16_g-1_sym", "w8a16_g-1_asym", "w2a16_g128_asym") * 16)
  config = dataclasses.replace(GroupedMatmulConfig.heuristic(experts.schemes, 384, NUM_EXPERTS),
                               bitcast_unpack=bitcast_unpack, weights_first=weights_first)

  def forward(lhs, experts, sizes):
    return gmm_triton.mixed_grouped_matmul(lhs, experts, sizes, 0, out_dtype=jnp.bfloat16, config=config,
                                           interpret=False)

  lhs = jax.ShapeDtypeStruct((384, K), jnp.bfloat16)
  sizes = jax.ShapeDtypeStruct((NUM_EXPERTS,), jnp.int32)
  assert _lower_for_cuda(forward, lhs, experts, sizes).count("xla.gpu.triton") == 1


@pytest.mark.parametrize("num_rows", [384, 49152])
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
def test_dense_forward_and_backward_lower_to_three_triton_calls(dtype, num_rows):
  config = None  # The heuristic, which picks wider prefill tiles for 16-bit operands.

  def forward_and_backward(lhs, rhs, sizes, offset):
    matmul = lambda a, b: gmm_triton.dense_grouped_matmul(a, b, sizes, offset, out_dtype=dtype, config=config,
                                                          interpret=False)
    out, vjp = jax.vjp(matmul, lhs, rhs)
    return out, vjp(out)

  specs = (
      jax.ShapeDtypeStruct((num_rows, K), dtype),
      jax.ShapeDtypeStruct((NUM_EXPERTS // 2, K, N), dtype),
      jax.ShapeDtypeStruct((NUM_EXPERTS,), jnp.int32),
      jax.ShapeDtypeStruct((), jnp.int32),
  )
  text = _lower_for_cuda(forward_and_backward, *specs)
  assert text.count("xla.gpu.triton") == 3
  for name in ("grouped_matmul", "grouped_matmul_transposed", "grouped_matmul_weight_grad"):
    assert name in text

"""The RMSNorm kernels lower through Triton for CUDA, checked on a machine without a GPU.

Lowering (not compiling) for the "cuda" platform runs Pallas' Triton lowering, which rejects
what Triton cannot express (e.g. tiles whose size is not a power of two). Interpret-mode
tests cannot catch that: the interpreter accepts any shape.
"""

import jax
import jax.numpy as jnp
import pytest

from kernels_pallas.rms_norm.config import RmsNormBlockConfig
from kernels_pallas.rms_norm import triton as rms_norm_triton


def _lower_for_cuda(fn, *specs) -> str:
  return jax.jit(fn).trace(*specs).lower(lowering_platforms=("cuda",)).as_text()


@pytest.mark.parametrize("rounding", ["float32", "transformers"])
@pytest.mark.parametrize(
    "num_rows, row_length, dtype",
    [(1000, 257, jnp.bfloat16), (4096, 4096, jnp.bfloat16), (8, 65536, jnp.float32), (100_000, 64, jnp.float16)],
)
def test_forward_and_backward_lower_to_two_triton_calls(num_rows, row_length, dtype, rounding):
  config = RmsNormBlockConfig.heuristic(row_length, num_rows)
  x = jax.ShapeDtypeStruct((num_rows, row_length), dtype)
  scale = jax.ShapeDtypeStruct((row_length,), jnp.float32)

  def forward_and_backward(x, scale, dy):
    y, vjp = jax.vjp(lambda a, b: rms_norm_triton.rms_norm_rows(a, b, 1e-6, rounding, config, False), x, scale)
    return y, vjp(dy)

  text = _lower_for_cuda(forward_and_backward, x, scale, x)
  assert text.count("xla.gpu.triton") == 2
  assert "rms_norm_forward" in text and "rms_norm_backward" in text


def test_vmapped_kernels_lower():
  config = RmsNormBlockConfig.heuristic(100, 4)
  x = jax.ShapeDtypeStruct((3, 4, 100), jnp.float32)
  scale = jax.ShapeDtypeStruct((3, 100), jnp.float32)

  def loss(x, scale):
    norm = lambda a, b: rms_norm_triton.rms_norm_rows(a, b, 1e-6, "float32", config, False)
    return jnp.sum(jnp.sin(jax.vmap(norm)(x, scale)))

  assert _lower_for_cuda(jax.grad(loss, argnums=(0, 1)), x, scale).count("xla.gpu.triton") == 2

"""The guidance kernels lower through Triton for CUDA, checked on a machine without a GPU.

Interpret-mode tests accept tiles Triton rejects (sizes that are not powers of two, say);
lowering for the "cuda" platform runs the real Triton lowering of both kernel variants. The
Fourier step is lowered as the op runs it: XLA's low-pass, then the kernel.
"""

import jax
import jax.numpy as jnp
import pytest

from jaxlab.ops.flow_guidance_op import api
from jaxlab.ops.flow_guidance_op.reference import SIGMA_EPS
from kernels_pallas.flow_guidance.config import FlowGuidanceConfig
from kernels_pallas.flow_guidance import triton as guidance_triton


def _lower_for_cuda(fn, *specs) -> str:
  return jax.jit(fn).trace(*specs).lower(lowering_platforms=("cuda",)).as_text()


def _specs(shape, dtype=jnp.float32):
  latent = jax.ShapeDtypeStruct(shape, dtype)
  return (latent,) * 5 + (jax.ShapeDtypeStruct((4,), jnp.float32),)


# The benchmark's largest latent, a SD3-like 128x128x16 one, and an odd one with C = 3.
_SHAPES = [(4, 512, 512, 16), (1, 128, 128, 16), (2, 6, 10, 3)]


@pytest.mark.parametrize("shape", _SHAPES)
@pytest.mark.parametrize("accelerate", [False, True])
def test_fourier_step_lowers_to_one_triton_call(shape, accelerate):
  def step(x_t, v, x0_ref, v_prev, v_ref_prev, scalars):
    previous = (v_prev, v_ref_prev) if accelerate else (None, None)
    return api._pallas_triton_fft(x_t, v, x0_ref, *previous, scalars, cutoff=0.2, order=4, config=None,
                                  interpret=False)

  text = _lower_for_cuda(step, *_specs(shape))
  assert text.count("xla.gpu.triton") == 1
  assert ("flow_guidance_accelerated" in text) == accelerate
  assert "stablehlo.fft" in text  # The transforms stay in XLA.


@pytest.mark.parametrize("shape", _SHAPES)
@pytest.mark.parametrize("accelerate", [False, True])
def test_haar_step_lowers_to_one_triton_call_and_nothing_else(shape, accelerate):
  def step(x_t, v, x0_ref, v_prev, v_ref_prev, scalars):
    previous = (v_prev, v_ref_prev) if accelerate else (None, None)
    return guidance_triton.flow_guidance_dwt(x_t, v, x0_ref, *previous, scalars, sigma_eps=SIGMA_EPS, config=None,
                                             interpret=False)

  text = _lower_for_cuda(step, *_specs(shape))
  assert text.count("xla.gpu.triton") == 1
  assert ("flow_guidance_haar_accelerated" in text) == accelerate
  assert "stablehlo.add" not in text and "stablehlo.multiply" not in text  # All arithmetic is in the kernel.


@pytest.mark.parametrize("block_size, num_warps", [(128, 1), (4096, 8)])
def test_other_block_sizes_and_bfloat16_inputs_lower(block_size, num_warps):
  config = FlowGuidanceConfig(block_size=block_size, num_warps=num_warps)

  def both(x_t, v, x0_ref, v_prev, v_ref_prev, scalars):
    fourier = guidance_triton.guided_update(x_t, v, x0_ref, x0_ref, v_prev, v_ref_prev, scalars, sigma_eps=SIGMA_EPS,
                                            config=config, interpret=False)
    haar = guidance_triton.flow_guidance_dwt(x_t, v, x0_ref, v_prev, v_ref_prev, scalars, sigma_eps=SIGMA_EPS,
                                             config=config, interpret=False)
    return fourier, haar

  assert _lower_for_cuda(both, *_specs((2, 64, 48, 16), jnp.bfloat16)).count("xla.gpu.triton") == 2

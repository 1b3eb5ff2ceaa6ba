"""Quantization: schemes, packed weight formats, RTN and GPTQ weight quantizers, activation quantizers,
and the randomized Hadamard rotation of the residual stream."""

from jaxlab.quant.activations import dequantize_activations, fake_quantize_activations, quantize_activations
from jaxlab.quant.experts import ExpertWeights, from_dense
from jaxlab.quant.gptq import HessianAccumulator, gptq_quantize, gptq_quantize_experts
from jaxlab.quant.hadamard import (
    fuse_rms_norm_scale,
    random_hadamard_matrix,
    rotate_embedding,
    rotate_input_side,
    rotate_moe_lm,
    rotate_output_side,
)
from jaxlab.quant.packing import pack_codes, unpack_codes
from jaxlab.quant.rtn import (
    average_bits,
    dequantize_experts,
    dequantize_weight,
    quantize_experts,
    quantize_weight,
)
from jaxlab.quant.scheme import (
    BF16,
    PACK_BLOCK,
    SUPPORTED_SCHEMES,
    QuantScheme,
    activation_bits,
    bits_per_weight,
    parse_scheme,
)
from jaxlab.quant.weights import QuantizedWeight

__all__ = [
    "BF16",
    "PACK_BLOCK",
    "SUPPORTED_SCHEMES",
    "ExpertWeights",
    "HessianAccumulator",
    "QuantScheme",
    "QuantizedWeight",
    "activation_bits",
    "average_bits",
    "bits_per_weight",
    "dequantize_activations",
    "dequantize_experts",
    "dequantize_weight",
    "fake_quantize_activations",
    "from_dense",
    "fuse_rms_norm_scale",
    "gptq_quantize",
    "gptq_quantize_experts",
    "pack_codes",
    "parse_scheme",
    "quantize_activations",
    "quantize_experts",
    "quantize_weight",
    "random_hadamard_matrix",
    "rotate_embedding",
    "rotate_input_side",
    "rotate_moe_lm",
    "rotate_output_side",
    "unpack_codes",
]

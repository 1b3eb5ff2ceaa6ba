"""Quantizers: RTN and GPTQ weight quantization, and randomized Hadamard rotations of weights.

The formats they write (schemes, packed codes, `QuantizedWeight`, `ExpertWeights`, decoding,
activation codes) live in `jaxlab.quant_formats`; their names are re-exported here.
"""

from jaxlab.quant.gptq import HessianAccumulator, gptq_quantize, gptq_quantize_experts
from jaxlab.quant.hadamard import (
    fuse_rms_norm_scale,
    random_hadamard_matrix,
    rotate_embedding,
    rotate_input_side,
    rotate_output_side,
)
from jaxlab.quant.rtn import average_bits, quantize_experts, quantize_weight
from jaxlab.quant_formats import (
    BF16,
    PACK_BLOCK,
    SUPPORTED_SCHEMES,
    ExpertWeights,
    QuantizedWeight,
    QuantScheme,
    activation_bits,
    bits_per_weight,
    dequantize_activations,
    dequantize_experts,
    dequantize_weight,
    fake_quantize_activations,
    from_dense,
    pack_codes,
    parse_scheme,
    quantize_activations,
    unpack_codes,
)

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
    "rotate_output_side",
    "unpack_codes",
]

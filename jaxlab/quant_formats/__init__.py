"""Quantized number formats: what stored codes and scales mean, and how to read them back.

Schemes (`scheme`), the 128-row bit packing of weight codes (`packing`), the containers
`QuantizedWeight` (`weights`) and `ExpertWeights` (`experts`), their exact decoding (`decode`),
and the dynamic activation codes that kernels consume (`activations`). Quantizers that choose
codes for given weights live in `jaxlab.quant`.
"""

from jaxlab.quant_formats.activations import dequantize_activations, fake_quantize_activations, quantize_activations
from jaxlab.quant_formats.decode import dequantize_experts, dequantize_weight, rows_by_group
from jaxlab.quant_formats.experts import ExpertWeights, from_dense
from jaxlab.quant_formats.packing import PACKED_BITS, pack_codes, packed_rows, unpack_codes
from jaxlab.quant_formats.scheme import (
    BF16,
    PACK_BLOCK,
    SUPPORTED_SCHEMES,
    QuantScheme,
    activation_bits,
    bits_per_weight,
    parse_scheme,
)
from jaxlab.quant_formats.weights import QuantizedWeight

__all__ = [
    "BF16",
    "PACK_BLOCK",
    "PACKED_BITS",
    "SUPPORTED_SCHEMES",
    "ExpertWeights",
    "QuantScheme",
    "QuantizedWeight",
    "activation_bits",
    "bits_per_weight",
    "dequantize_activations",
    "dequantize_experts",
    "dequantize_weight",
    "fake_quantize_activations",
    "from_dense",
    "pack_codes",
    "packed_rows",
    "parse_scheme",
    "quantize_activations",
    "rows_by_group",
    "unpack_codes",
]

"""Ops with several implementations (XLA reference, Pallas kernels), chosen per call.

Each op takes `implementation=None | name | sequence of names` and `interpret=False`; see
`jaxlab.ops.registry` for the dispatch rules. Importing this package loads jax and the op
front-ends only: kernels are imported when an implementation is first tried.
"""

# Bound eagerly on purpose: each op subpackage (`attention`, `rms_norm`, `gaussian_raster`, ...) shares its
# function's name, and the import system would otherwise leave the subpackage, not the
# function, at `jaxlab.ops.<op>`.
from jaxlab.ops.attention.api import attention, attention_decode, resolve_attention
from jaxlab.ops.attention.config import FlashBlockConfig
from jaxlab.ops.attention.mask import AttentionMask
from jaxlab.ops.flow_guidance.api import flow_guidance, resolve_flow_guidance
from jaxlab.ops.flow_guidance.config import FlowGuidanceConfig
from jaxlab.ops.gaussian_raster.api import gaussian_raster, resolve_gaussian_raster
from jaxlab.ops.grouped_matmul.api import grouped_matmul, resolve_grouped_matmul
from jaxlab.ops.grouped_matmul.config import GroupedMatmulConfig, TileShape
from jaxlab.ops.registry import IMPLEMENTATIONS, NoImplementationError, default_preference
from jaxlab.ops.rms_norm.api import resolve_rms_norm, rms_norm
from jaxlab.ops.rms_norm.config import RmsNormBlockConfig

__all__ = [
    "AttentionMask",
    "FlashBlockConfig",
    "attention",
    "attention_decode",
    "resolve_attention",
    "FlowGuidanceConfig",
    "GroupedMatmulConfig",
    "IMPLEMENTATIONS",
    "NoImplementationError",
    "RmsNormBlockConfig",
    "default_preference",
    "flow_guidance",
    "gaussian_raster",
    "grouped_matmul",
    "resolve_flow_guidance",
    "resolve_gaussian_raster",
    "resolve_grouped_matmul",
    "resolve_rms_norm",
    "rms_norm",
    "TileShape",
]

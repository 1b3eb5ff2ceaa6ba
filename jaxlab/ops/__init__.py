"""Ops with several implementations (XLA reference, Pallas kernels), chosen per call.

Each op takes `implementation=None | name | sequence of names` and `interpret=False`; see
`jaxlab.ops.registry` for the dispatch rules. Importing this package loads jax and the op
front-ends only: kernels are imported when an implementation is first tried.
"""

# Each op lives in `<name>_op/` so that `jaxlab.ops.<name>` is the function and
# `jaxlab.ops.<name>_op.<module>` still imports. Block configs are the kernels' own
# (`kernels_pallas/<kernel>/config.py`), re-exported here because callers pass them in.
from jaxlab.ops.attention_op.api import attention, attention_decode, resolve_attention
from jaxlab.ops.attention_op.mask import AttentionMask
from jaxlab.ops.flow_guidance_op.api import flow_guidance, resolve_flow_guidance
from jaxlab.ops.gaussian_raster_op.api import gaussian_raster, resolve_gaussian_raster
from jaxlab.ops.grouped_matmul_op.api import grouped_matmul, resolve_grouped_matmul
from jaxlab.ops.registry import IMPLEMENTATIONS, NoImplementationError, default_preference
from jaxlab.ops.rms_norm_op.api import resolve_rms_norm, rms_norm
from kernels_pallas.attention.config import FlashBlockConfig
from kernels_pallas.flow_guidance.config import FlowGuidanceConfig
from kernels_pallas.grouped_matmul.config import GroupedMatmulConfig, TileShape
from kernels_pallas.rms_norm.config import RmsNormBlockConfig

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

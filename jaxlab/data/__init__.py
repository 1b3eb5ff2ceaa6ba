"""Grain input pipelines: the fixed-order batch builder and global-array assembly."""

from jaxlab.data.pipeline import batch_dim_sharding
from jaxlab.data.pipeline import build_batches
from jaxlab.data.pipeline import make_global_batch

__all__ = ["batch_dim_sharding", "build_batches", "make_global_batch"]

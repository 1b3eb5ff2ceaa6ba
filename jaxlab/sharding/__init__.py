"""Sharding by logical axis names: names, rule presets, meshes, annotation and checks.

Models name array dimensions with the constants in `axes` (`BATCH`, `EMBED`, ...);
`logical_rules` turns parallelism presets into a Linen rule table; `make_mesh` builds the
mesh; `init_sharded` creates parameters directly in their shards and
`assert_params_sharded` checks the result. All logical annotation in jaxlab goes through
this package.
"""

from jaxlab.sharding.annotate import (
    axis_rules,
    batch_sharding,
    constrain,
    logical_to_shardings,
    param_with_axes,
)
from jaxlab.sharding.axes import (
    BATCH,
    EMBED,
    EXPERT,
    GAUSSIANS,
    HEAD_DIM,
    HEADS,
    KV_HEADS,
    LAYERS,
    MESH_AXES,
    MLP,
    SEQ,
    VOCAB,
)
from jaxlab.sharding.checks import assert_params_sharded, sharding_summary
from jaxlab.sharding.mesh import make_mesh, mesh_shape
from jaxlab.sharding.params import init_sharded
from jaxlab.sharding.rules import PRESETS, logical_rules

__all__ = [
    "BATCH",
    "EMBED",
    "EXPERT",
    "GAUSSIANS",
    "HEAD_DIM",
    "HEADS",
    "KV_HEADS",
    "LAYERS",
    "MESH_AXES",
    "MLP",
    "PRESETS",
    "SEQ",
    "VOCAB",
    "assert_params_sharded",
    "axis_rules",
    "batch_sharding",
    "constrain",
    "init_sharded",
    "logical_rules",
    "logical_to_shardings",
    "make_mesh",
    "mesh_shape",
    "param_with_axes",
    "sharding_summary",
]

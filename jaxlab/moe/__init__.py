"""Mixture-of-experts feed-forward layers with dropless, sort-based dispatch.

`route_top_k` picks experts, `sort_by_expert` / `permute` / `combine` move tokens to expert
order and back, `swiglu_experts` runs the experts through `jaxlab.ops.grouped_matmul`,
`moe_ffn` chains them, `moe_ffn_expert_parallel` splits the experts over a mesh axis, and
`MoEFeedForward` is the Linen layer that owns the parameters and picks the path.
"""

from jaxlab.moe.dispatch import Dispatch, combine, permute, sort_by_expert
from jaxlab.moe.expert_parallel import moe_ffn_expert_parallel
from jaxlab.moe.experts import swiglu_experts
from jaxlab.moe.layer import MoEFeedForward, dense_swiglu, moe_ffn
from jaxlab.moe.router import (
    MoEAux,
    load_balancing_loss,
    route_top_k,
    router_logits,
    router_z_loss,
    routing_aux,
)

__all__ = [
    "Dispatch",
    "MoEAux",
    "MoEFeedForward",
    "combine",
    "dense_swiglu",
    "load_balancing_loss",
    "moe_ffn",
    "moe_ffn_expert_parallel",
    "permute",
    "route_top_k",
    "router_logits",
    "router_z_loss",
    "routing_aux",
    "sort_by_expert",
    "swiglu_experts",
]

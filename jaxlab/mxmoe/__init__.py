"""MxMoE mixed-precision allocation: block sensitivities, a runtime cost model, an exact integer program.

Per MoE layer, every linear block (gate/up fused, down; shared experts as one more expert) gets
one scheme from a menu, minimising L^r T^(1-r) (L: output-error sensitivity, T: modelled
runtime) under an average-bits budget. See `solver` for the method and its optimality argument.
`rotation` rotates an MoE LM's residual stream before quantization; `pipeline` runs calibration,
allocation and quantization on a whole model, and `checkpoint` stores the result.
"""

from jaxlab.mxmoe.assignment import (
    build_assignment,
    layer_schemes,
    load_assignment,
    save_assignment,
    validate_assignment,
)
from jaxlab.mxmoe.blocks import KINDS, LinearBlock, moe_layer_blocks
from jaxlab.mxmoe.cost import DEVICE_SPECS, CostModel, DeviceSpec, device_spec, load_cost_model
from jaxlab.mxmoe.rotation import rotate_moe_lm
from jaxlab.mxmoe.sensitivity import (
    WEIGHT_PATHS,
    block_sensitivities,
    expert_frequencies,
    rtn_fake_quantize,
    workload_rows,
)
from jaxlab.mxmoe.solver import (
    Allocation,
    AllocationProblem,
    allocate,
    allocation_problem,
    brute_force_allocate,
    objective,
    solve,
    uniform_allocation,
)

__all__ = [
    "DEVICE_SPECS",
    "KINDS",
    "WEIGHT_PATHS",
    "Allocation",
    "AllocationProblem",
    "CostModel",
    "DeviceSpec",
    "LinearBlock",
    "allocate",
    "allocation_problem",
    "block_sensitivities",
    "brute_force_allocate",
    "build_assignment",
    "device_spec",
    "expert_frequencies",
    "layer_schemes",
    "load_assignment",
    "load_cost_model",
    "moe_layer_blocks",
    "objective",
    "rotate_moe_lm",
    "rtn_fake_quantize",
    "save_assignment",
    "solve",
    "uniform_allocation",
    "validate_assignment",
    "workload_rows",
]

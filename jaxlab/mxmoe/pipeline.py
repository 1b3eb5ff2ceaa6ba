"""Post-training quantization of an MoE decoder LM, end to end: calibrate, allocate, quantize.

  calib = calibrate(config, params, tokens_nt)          # per-layer inputs, routing, block rows
  assignment = mxmoe_assignment(config, params, calib, menu=..., avg_bits=..., r=..., cost_model=...)
  q_params = quantize_model(config, params, calib, assignment, method="gptq")

Every MoE layer is handled on its own, with the float model's inputs (MxMoE: "layer l+1 is fed
the FP outputs"). Assignments are the JSON objects of `jaxlab.mxmoe.assignment`: per layer,
one scheme per expert for "gate_up" and for "down" (the shared expert last). `uniform_assignment`
builds the same object for one scheme everywhere, so baselines and MxMoE share one code path.
Attention, embeddings, norms and routers stay in float, as in MxMoE.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import jax
import numpy as np

from jaxlab.moe.models import MoELMConfig, layer_inputs
from jaxlab.mxmoe import assignment as assignment_lib
from jaxlab.mxmoe.blocks import moe_layer_blocks
from jaxlab.mxmoe.cost import CostModel
from jaxlab.mxmoe.model_layer import block_inputs, layer_fn
from jaxlab.mxmoe.sensitivity import block_sensitivities, expert_frequencies, workload_rows
from jaxlab.mxmoe.solver import allocate
from jaxlab.quant import gptq, rtn
from jaxlab.quant_formats.decode import dequantize_experts
from jaxlab.quant_formats.scheme import bits_per_weight, parse_scheme

log = logging.getLogger(__name__)

_STACKS = {"gate_up": ("gate_up", "shared_gate_up"), "down": ("down", "shared_down")}


@dataclasses.dataclass
class Calibration:
  """What one pass of calibration text through the float model leaves behind.

  Attributes:
    inputs: per MoE layer index, its input activations [N, S, D].
    tokens_per_expert: per MoE layer, (token, slot) assignments per routed expert [E].
    rows: per MoE layer, {(expert, kind): [n, K] rows entering the block} (GPTQ's Hessians).
    num_tokens: calibration tokens N * S.
  """

  inputs: dict[int, jax.Array]
  tokens_per_expert: dict[int, np.ndarray]
  rows: dict[int, dict[tuple[int, str], np.ndarray]]
  num_tokens: int


def moe_layers(config: MoELMConfig) -> list[int]:
  return [i for i in range(config.num_layers) if config.is_moe_layer(i)]


def calibrate(config: MoELMConfig, params, tokens_nt: np.ndarray) -> Calibration:
  """Runs the float model on calibration sequences [N, S] and records each MoE layer's inputs."""
  tokens_nt = np.asarray(tokens_nt, np.int32)
  if tokens_nt.ndim != 2:
    raise ValueError(f"calibration tokens must be [N, S], got shape {tokens_nt.shape}")
  xs = layer_inputs(config, params, tokens_nt)
  inputs, counts, rows = {}, {}, {}
  for i in moe_layers(config):
    inputs[i] = xs[i]
    rows[i] = block_inputs(config, params[f"layers_{i}"], xs[i])
    counts[i] = np.asarray([rows[i][(e, "gate_up")].shape[0] for e in range(config.num_experts)], np.int64)
  return Calibration(inputs, counts, rows, int(tokens_nt.size))


def uniform_assignment(config: MoELMConfig, scheme: str) -> dict:
  """The assignment JSON with `scheme` for every block of every MoE layer."""
  name = parse_scheme(scheme).name
  experts = config.num_experts + (1 if config.shared_expert_intermediate_size else 0)
  layers = {str(i): {"gate_up": [name] * experts, "down": [name] * experts} for i in moe_layers(config)}
  return assignment_lib.validate_assignment({
      "format": assignment_lib.FORMAT, "layers": layers, "menu": [name], "r": 1.0,
      "budget_bits": bits_per_weight(name), "cost_source": "none (uniform)", "layer_stats": {},
  })


def layer_blocks(config: MoELMConfig, calib: Calibration, layer: int, batch_tokens: int):
  """The layer's linear blocks with rows per expert for a batch of `batch_tokens` tokens."""
  frequencies = expert_frequencies(calib.tokens_per_expert[layer])
  rows = workload_rows(frequencies, batch_tokens, config.top_k)
  return moe_layer_blocks(
      d_model=config.hidden_size, d_ff=config.moe_intermediate_size, rows_per_expert=[int(m) for m in rows],
      shared_d_ff=config.shared_expert_intermediate_size, shared_rows=batch_tokens,
  )


def _gptq_fake_quantizer(config: MoELMConfig, layer_params, rows: dict):
  """quantize(w_stack, scheme) for `block_sensitivities` that fake-quantizes with GPTQ.

  `block_sensitivities` hands over the layer's own stack arrays, so each is recognised by
  identity and paired with its experts' calibration rows.
  """
  moe = layer_params["moe"]
  owners = {id(moe["gate_up"]): ("gate_up", range(config.num_experts)),
            id(moe["down"]): ("down", range(config.num_experts))}
  if "shared_gate_up" in moe:
    owners[id(moe["shared_gate_up"])] = ("gate_up", [config.num_experts])
    owners[id(moe["shared_down"])] = ("down", [config.num_experts])

  def quantize(w_ekn, scheme):
    if id(w_ekn) not in owners:
      raise ValueError("the GPTQ sensitivity quantizer got a weight stack it does not know")
    kind, experts = owners[id(w_ekn)]
    if not parse_scheme(scheme).quantizes_weights:
      return w_ekn
    hessians = [_hessian(rows[(e, kind)]) for e in experts]
    quantized = gptq.gptq_quantize_experts(np.asarray(w_ekn, np.float32), hessians, scheme)
    return dequantize_experts(quantized).astype(w_ekn.dtype)

  return quantize


def mxmoe_assignment(
    config: MoELMConfig,
    params,
    calib: Calibration,
    *,
    menu: Sequence[str],
    avg_bits: float,
    r: float,
    cost_model: CostModel,
    batch_tokens: int = 8192,
    sensitivity_batch: int | None = 16,
    sensitivity_quantizer: str = "gptq",
) -> dict:
  """MxMoE's allocation, layer by layer: sensitivities, costs, the exact integer program.

  Args:
    sensitivity_quantizer: how a block is quantized when its Delta is measured: "gptq" (the
      quantizer the model is then built with, so Delta predicts the final error) or "rtn".
  """
  if sensitivity_quantizer not in ("gptq", "rtn"):
    raise ValueError(f"sensitivity_quantizer must be 'gptq' or 'rtn', got {sensitivity_quantizer!r}")
  fn = layer_fn(config)
  allocations = {}
  for i in moe_layers(config):
    blocks = layer_blocks(config, calib, i, batch_tokens)
    layer_params = params[f"layers_{i}"]
    kwargs = {}
    if sensitivity_quantizer == "gptq":
      kwargs["quantize"] = _gptq_fake_quantizer(config, layer_params, calib.rows[i])
    deltas = block_sensitivities(fn, layer_params, calib.inputs[i], blocks, menu, batch_size=sensitivity_batch,
                                 **kwargs)
    allocations[i] = allocate(blocks, menu, deltas, cost_model, avg_bits=avg_bits, r=r)
    log.info("layer %d: L=%.4g T=%.4g us, %.3f bits (%s)", i, allocations[i].loss, allocations[i].time_s * 1e6,
             allocations[i].average_bits, allocations[i].status)
  return assignment_lib.build_assignment(
      allocations, menu=menu, r=r, budget_bits=avg_bits, cost_source=cost_model.source, batch_tokens=batch_tokens,
  )


def _hessian(rows_nk: np.ndarray) -> gptq.HessianAccumulator:
  """GPTQ's Hessian of one block from its calibration rows (all zeros when the block got none:
  GPTQ then falls back to round-to-nearest)."""
  accumulator = gptq.HessianAccumulator(rows_nk.shape[1])
  accumulator.update(rows_nk)
  return accumulator


def quantize_model(config: MoELMConfig, params, calib: Calibration | None, assignment: dict, *,
                   method: str = "gptq") -> dict:
  """Params with every MoE layer's expert stacks replaced by `ExpertWeights` as `assignment` says.

  Args:
    method: "rtn" (round to nearest; `calib` may be None) or "gptq" (Hessians from `calib`).
  """
  if method not in ("rtn", "gptq"):
    raise ValueError(f"method must be 'rtn' or 'gptq', got {method!r}")
  if method == "gptq" and calib is None:
    raise ValueError("GPTQ needs a Calibration (its Hessians come from the calibration rows)")
  assignment = assignment_lib.validate_assignment(assignment)
  out = jax.tree.map(lambda x: x, params)  # A fresh nested dict; arrays are shared.
  num_routed = config.num_experts
  for i in moe_layers(config):
    schemes = assignment_lib.layer_schemes(assignment, i)
    moe = dict(out[f"layers_{i}"]["moe"])
    for kind, (routed_name, shared_name) in _STACKS.items():
      names = schemes[kind]
      groups = [(routed_name, list(range(num_routed)))]
      if shared_name in moe:
        groups.append((shared_name, [num_routed]))
      for stack_name, experts in groups:
        w_ekn = np.asarray(moe[stack_name], np.float32)
        stack_schemes = [names[e] for e in experts]
        if method == "rtn":
          moe[stack_name] = rtn.quantize_experts(w_ekn, stack_schemes)
        else:
          hessians = [_hessian(calib.rows[i][(e, kind)]) for e in experts]
          moe[stack_name] = gptq.gptq_quantize_experts(w_ekn, hessians, stack_schemes)
    layer = dict(out[f"layers_{i}"])
    layer["moe"] = moe
    out[f"layers_{i}"] = layer
  return out


def average_bits(assignment: dict, config: MoELMConfig) -> float:
  """Size-weighted mean bits per expert weight of an assignment (shared experts included)."""
  d, f, fs = config.hidden_size, config.moe_intermediate_size, config.shared_expert_intermediate_size
  total_bits = total = 0.0
  for layer in assignment["layers"].values():
    for kind in ("gate_up", "down"):
      for e, name in enumerate(layer[kind]):
        width = fs if e == config.num_experts else f
        size = d * 2 * width if kind == "gate_up" else width * d
        total_bits += bits_per_weight(name) * size
        total += size
  return total_bits / total

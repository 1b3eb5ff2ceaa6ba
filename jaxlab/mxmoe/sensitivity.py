"""Block sensitivities Delta and expert workloads, the inputs of MxMoE's allocation.

Delta[e, kind, s] = ||O_hat - O||_F over every calibration token, where O is the float output of
the WHOLE decoder layer and O_hat its output with only block (e, kind) in scheme s: the block's
weights replaced by their quantized-then-dequantized values and, for schemes that quantize
activations, the block's input activations fake-quantized as well. Squares are summed per token
in float32 on the device and over tokens in float64 on the host.

The layer function contract:

    layer_fn(params, x, act_quant=None) -> y

  params: the layer's parameters, a nested mapping holding the expert weights at
    "moe/gate_up" [E, D, 2F], "moe/down" [E, F, D] and, with shared experts,
    "moe/shared_gate_up" [1, D, 2Fs], "moe/shared_down" [1, Fs, D] (override with `weight_paths`).
  x: [n, S, D] layer inputs; y: the layer's output, any shape.
  act_quant: None, or a dict {(expert, kind): (bits, group_size)}. For each entry the layer must
    fake-quantize (`jaxlab.quant_formats.fake_quantize_activations(rows, bits, group_size)`, symmetric,
    per token for group_size -1) the rows entering that block: for "gate_up", expert e's input
    tokens before the fused gate/up product; for "down", its hidden activations silu(gate) * up
    before the down product. Expert index E (the number of routed experts) names the shared
    experts. Keys and values are plain Python ints and strings, so the layer may branch on them
    while tracing. It is passed only when non-empty: a layer without activation quantization may
    leave the keyword out, as long as the menu has no wXa8 / wXa4 scheme.

Cost: one forward per (block, scheme) per calibration chunk, E * 2 * |S| for a layer without
shared experts. `layer_fn` is compiled once for the reference and every weight-only evaluation
(the replaced block's index and weights are traced arguments), and once per (block, activation
format) for schemes that quantize activations (the dict above is static). Compiled functions are
cached across calls, so layers of equal shapes reuse them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.mxmoe.blocks import KINDS, LinearBlock
from jaxlab.quant.rtn import quantize_weight
from jaxlab.quant_formats.decode import dequantize_weight
from jaxlab.quant_formats.scheme import QuantScheme, parse_scheme

WEIGHT_PATHS = {
    "gate_up": "moe/gate_up",
    "down": "moe/down",
    "shared_gate_up": "moe/shared_gate_up",
    "shared_down": "moe/shared_down",
}


def rtn_fake_quantize(w_ekn: jax.Array, scheme: QuantScheme | str) -> jax.Array:
  """Round-to-nearest quantized-then-dequantized weights, same shape and dtype (leading axes allowed)."""
  scheme = parse_scheme(scheme)
  if not scheme.quantizes_weights:
    return w_ekn  # bf16 keeps the weights as they are; nothing to compile.
  return _rtn_fake_quantize(w_ekn, scheme)


# Compiled whole: op-by-op dispatch would compile each of its small ops separately.
@functools.partial(jax.jit, static_argnums=1)
def _rtn_fake_quantize(w_ekn: jax.Array, scheme: QuantScheme) -> jax.Array:
  return dequantize_weight(quantize_weight(w_ekn, scheme), w_ekn.dtype)


def _lookup(params, path: str):
  node = params
  for part in path.split("/"):
    if not isinstance(node, Mapping) or part not in node:
      return None
    node = node[part]
  return node


def _replace(params, parts: tuple[str, ...], fn):
  """A copy of the nested mapping `params` with the leaf at `parts` replaced by fn(leaf)."""
  if not parts:
    return fn(params)
  head, rest = parts[0], parts[1:]
  out = dict(params)
  out[head] = _replace(params[head], rest, fn)
  return out


@functools.partial(jax.jit, static_argnames=("layer_fn", "paths", "act_quant"))
def _forward(params, x, w_kns, indices, *, layer_fn, paths, act_quant):
  """layer_fn with expert indices[i] of the stack at paths[i] replaced by w_kns[i], for every i.

  Every evaluation passes all stacks (unchanged ones as their own expert 0), so one compiled
  program serves every weight-only evaluation and the reference alike.
  """
  for path, w_kn, index in zip(paths, w_kns, indices):
    params = _replace(params, tuple(path.split("/")),
                      lambda stack, w_kn=w_kn, index=index: stack.at[index].set(w_kn.astype(stack.dtype)))
  if act_quant is None:
    return layer_fn(params, x)
  return layer_fn(params, x, act_quant=dict(act_quant))


@jax.jit
def _token_sq_error(y_hat, y):
  """Squared error summed over the last axis, in float32."""
  diff = y_hat.astype(jnp.float32) - y.astype(jnp.float32)
  return jnp.sum(diff * diff, axis=-1)


def _chunks(calibration_x, batch_size) -> list:
  if isinstance(calibration_x, (list, tuple)):
    chunks = list(calibration_x)
  elif hasattr(calibration_x, "shape"):
    if calibration_x.ndim != 3:
      raise ValueError(f"calibration_x must be [N, S, D] (or a list of them), got shape {calibration_x.shape}")
    size = calibration_x.shape[0] if batch_size is None else batch_size
    chunks = [calibration_x[i:i + size] for i in range(0, calibration_x.shape[0], size)]
  else:
    raise TypeError(
        f"calibration_x must be an array [N, S, D] or a list of them, got {type(calibration_x).__name__}")
  if not chunks:
    raise ValueError("calibration_x holds no samples")
  for chunk in chunks:
    if getattr(chunk, "ndim", None) != 3:
      got = getattr(chunk, "shape", type(chunk).__name__)
      raise ValueError(f"each calibration chunk must be [n, S, D], got {got}")
  return [jnp.asarray(c) for c in chunks]


def _block_keys(blocks, num_experts: int, has_shared: bool) -> list[tuple[int, str]]:
  if blocks is None:
    experts = num_experts + (1 if has_shared else 0)
    return [(e, kind) for e in range(experts) for kind in KINDS]
  keys = []
  for block in blocks:
    key = block.key if isinstance(block, LinearBlock) else block
    if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], int) and key[1] in KINDS):
      raise ValueError(f"blocks are (expert, kind) pairs with kind in {KINDS} (or LinearBlocks), got {block!r}")
    expert = key[0]
    if not (0 <= expert < num_experts or (expert == num_experts and has_shared)):
      shared = f", or {num_experts} for the shared experts" if has_shared else " (the layer has no shared experts)"
      raise ValueError(f"block {key}: expert must be in 0..{num_experts - 1}{shared}")
    keys.append(key)
  return list(dict.fromkeys(keys))


def block_sensitivities(
    layer_fn: Callable,
    layer_params,
    calibration_x,
    blocks: Sequence[tuple[int, str] | LinearBlock] | None,
    schemes: Sequence[QuantScheme | str],
    *,
    quantize: Callable[[jax.Array, QuantScheme], jax.Array] = rtn_fake_quantize,
    batch_size: int | None = None,
    weight_paths: Mapping[str, str] | None = None,
) -> dict[tuple[int, str, str], float]:
  """Delta for every block in every scheme: {(expert, kind, scheme name): ||O_hat - O||_F}.

  Args:
    layer_fn: the whole decoder layer, following the contract in the module docstring. It must
      be hashable (a function is) and traceable by `jax.jit`.
    layer_params: its parameters (nested mapping with the expert weights at `weight_paths`).
    calibration_x: layer inputs, an array [N, S, D] (cut into `batch_size` samples per forward;
      default all at once) or a list of [n, S, D] chunks. The float outputs of every chunk stay
      on the device for the whole call.
    blocks: (expert, kind) keys or LinearBlocks; None for every block of the layer.
    schemes: the scheme menu.
    quantize: quantize(w [E, K, N], scheme) -> fake-quantized w, same shape; applied per stack
      (every expert of a kind at once). Default: round-to-nearest.
    weight_paths: where the four weight stacks live in `layer_params` (default `WEIGHT_PATHS`).
  """
  if not callable(layer_fn):
    raise TypeError(f"layer_fn must be callable, got {type(layer_fn).__name__}")
  if not isinstance(layer_params, Mapping):
    raise TypeError(f"layer_params must be a nested mapping, got {type(layer_params).__name__}")
  if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
    raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
  paths = dict(WEIGHT_PATHS if weight_paths is None else weight_paths)
  if set(paths) != set(WEIGHT_PATHS):
    raise ValueError(f"weight_paths must name exactly {sorted(WEIGHT_PATHS)}, got {sorted(paths)}")
  menu = [parse_scheme(s) for s in schemes]
  if not menu:
    raise ValueError("schemes is empty")
  stacks = {name: _lookup(layer_params, path) for name, path in paths.items()}
  for name in ("gate_up", "down"):
    if getattr(stacks[name], "ndim", None) != 3:
      raise ValueError(f"layer_params must hold a [E, K, N] array at {paths[name]!r}; "
                       f"got {getattr(stacks[name], 'shape', type(stacks[name]).__name__)}")
  has_shared = stacks["shared_gate_up"] is not None
  if has_shared != (stacks["shared_down"] is not None):
    raise ValueError(f"layer_params must hold both or neither of {paths['shared_gate_up']!r} and "
                     f"{paths['shared_down']!r}")
  if has_shared and (stacks["shared_gate_up"].shape[0] != 1 or stacks["shared_down"].shape[0] != 1):
    raise ValueError("shared expert weights are one merged expert: shapes [1, D, 2Fs] and [1, Fs, D], got "
                     f"{stacks['shared_gate_up'].shape} and {stacks['shared_down'].shape}")
  num_experts = stacks["gate_up"].shape[0]
  keys = _block_keys(blocks, num_experts, has_shared)
  chunks = _chunks(calibration_x, batch_size)

  def stack_name(expert, kind):
    return f"shared_{kind}" if expert == num_experts else kind

  names = [name for name in WEIGHT_PATHS if stacks[name] is not None]
  run = functools.partial(_forward, layer_fn=layer_fn, paths=tuple(paths[name] for name in names))
  originals = [stacks[name][0] for name in names]
  # The reference runs the same compiled program, every stack's expert 0 "replaced" by itself,
  # so that an unchanged block gives exactly zero.
  references = [run(layer_params, x, originals, [0] * len(names), act_quant=None) for x in chunks]
  out: dict[tuple[int, str, str], float] = {}
  for position, name in enumerate(names):
    members = [key for key in keys if stack_name(*key) == name]
    if not members:
      continue
    stack = stacks[name]
    for scheme in menu:
      fake_stack = quantize(stack, scheme)
      if getattr(fake_stack, "shape", None) != stack.shape:
        raise ValueError(f"quantize returned shape {getattr(fake_stack, 'shape', None)} for a stack of shape "
                         f"{stack.shape} in scheme {scheme.name}")
      for expert, kind in members:
        index = 0 if expert == num_experts else expert
        w_kns, indices = list(originals), [0] * len(names)
        w_kns[position], indices[position] = fake_stack[index], index
        act_quant = None
        if scheme.quantizes_activations:
          act_quant = (((expert, kind), (scheme.a_bits, scheme.group_size)),)
        total = 0.0
        for x, y in zip(chunks, references):
          y_hat = run(layer_params, x, w_kns, indices, act_quant=act_quant)
          total += float(np.sum(np.asarray(_token_sq_error(y_hat, y), np.float64)))
        out[(expert, kind, scheme.name)] = float(np.sqrt(total))
  return out


def expert_frequencies(tokens_per_expert) -> np.ndarray:
  """f_e: each expert's share of the traced (token, slot) assignments, per layer ([E] or [L, E]).

  `tokens_per_expert` counts, per layer, how many (token, top-k slot) pairs the router sent to
  each routed expert on the traced calibration text (a token counts once per slot).
  """
  counts = np.asarray(tokens_per_expert, np.float64)
  if counts.ndim not in (1, 2) or counts.shape[-1] == 0:
    raise ValueError(f"tokens_per_expert must be [E] or [L, E] counts, got shape {counts.shape}")
  if not np.all(np.isfinite(counts)) or np.any(counts < 0):
    raise ValueError("tokens_per_expert must hold finite counts >= 0")
  totals = counts.sum(axis=-1, keepdims=True)
  if np.any(totals <= 0):
    raise ValueError("every layer needs at least one traced assignment (a row of tokens_per_expert sums to 0)")
  return counts / totals


def workload_rows(frequencies, batch_tokens: int, top_k: int) -> np.ndarray:
  """M_e = int(B * top_k * f_e): rows each routed expert multiplies in a batch of B tokens.

  With f_e = count_e / (N_traced * top_k) this is MxMoE's int(B * count_e / N_traced). A 1e-9
  allowance keeps floating-point error from flooring an exact integer down by one. Shared experts
  multiply all B rows; they are not part of the result.
  """
  f = np.asarray(frequencies, np.float64)
  for name, value in (("batch_tokens", batch_tokens), ("top_k", top_k)):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f"{name} must be a positive int, got {value!r}")
  if f.ndim not in (1, 2) or not np.all(np.isfinite(f)) or np.any(f < 0):
    raise ValueError(f"frequencies must be finite, >= 0, shape [E] or [L, E]; got shape {f.shape}")
  if not np.allclose(f.sum(axis=-1), 1.0, atol=1e-6):
    raise ValueError(f"frequencies must sum to 1 per layer (from expert_frequencies), got sums {f.sum(axis=-1)}")
  return np.floor(batch_tokens * top_k * f + 1e-9).astype(np.int64)

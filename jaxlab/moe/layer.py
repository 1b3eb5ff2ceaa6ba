"""Mixture-of-experts SwiGLU feed-forward: pure `moe_ffn` and the Linen module `MoEFeedForward`.

Routed experts: softmax top-k router, dropless sort-based dispatch, SwiGLU experts through
`jaxlab.ops.grouped_matmul`, weighted combine. Optional shared experts (DeepSeek, Qwen2-MoE)
form one dense SwiGLU that every token goes through, optionally scaled by a sigmoid gate
(Qwen2-MoE's `shared_expert_gate`). The shared SwiGLU is stored like one more expert
([1, D, 2F] / [1, F, D]) and runs through the same grouped matmul with a single group, so it
can be quantized (`jaxlab.quant_formats.ExpertWeights`) exactly like the routed experts.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.moe.dispatch import combine, permute, sort_by_expert
from jaxlab.moe.expert_parallel import ambient_mesh, moe_ffn_expert_parallel
from jaxlab.moe.experts import check_moe_inputs, swiglu_experts
from jaxlab.moe.router import MoEAux, route_top_k, router_logits, routing_aux
from jaxlab.ops.registry import ImplementationArg
from jaxlab.quant_formats import ExpertWeights
from jaxlab.sharding import axes
from jaxlab.sharding.annotate import param_with_axes


def dense_swiglu(
    x_td: jax.Array, gate_up, down, *, implementation: ImplementationArg = None, interpret: bool = False
) -> jax.Array:
  """One SwiGLU applied to every token: `swiglu_experts` with a single group covering all T rows.

  Args:
    x_td: [T, D] tokens.
    gate_up: [1, D, 2F] (gate = first F columns, up = last F) or one-expert `ExpertWeights`.
    down: [1, F, D] or one-expert `ExpertWeights`.
    implementation, interpret: forwarded to `jaxlab.ops.grouped_matmul`.

  Returns:
    [T, D] in x's dtype.
  """
  if x_td.ndim != 2:
    raise ValueError(f"x_td must have shape [T, D], got shape {x_td.shape}")
  for name, w in (("gate_up", gate_up), ("down", down)):
    if isinstance(w, ExpertWeights):
      count, got = w.num_experts, f"ExpertWeights of {w.num_experts} experts"
    else:
      shape = getattr(w, "shape", None)
      count = shape[0] if shape is not None and len(shape) == 3 else None
      got = f"shape {tuple(shape)}" if shape is not None else type(w).__name__
    if count != 1:
      raise ValueError(
          f"{name} must hold exactly one SwiGLU ([1, K, N] or one-expert ExpertWeights), got {got}"
      )
  group_sizes = jnp.full((1,), x_td.shape[0], jnp.int32)
  return swiglu_experts(x_td, gate_up, down, group_sizes, implementation=implementation, interpret=interpret)


def expert_param(module: nn.Module, name: str, logical_axes, shape: tuple[int, int, int], param_dtype):
  """`module`'s [E, K, N] weight `name`: created by the initializer, or the stored array or `ExpertWeights`.

  Flax's `self.param` compares the stored leaves' shapes with the initializer's, which packed
  quantized codes never match, so stored `ExpertWeights` are read directly and checked here.
  """
  if module.has_variable("params", name):
    stored = module.get_variable("params", name)
    if isinstance(stored, ExpertWeights):
      got = (stored.num_experts, stored.in_features, stored.out_features)
      if got != tuple(shape):
        raise ValueError(
            f"{type(module).__name__} param {name!r}: ExpertWeights hold [E, K, N] = {got}, "
            f"expected {tuple(shape)}"
        )
      return stored
  # Experts are a batch dimension of the weights: fan-in is K, not E * K.
  init = param_with_axes(nn.initializers.lecun_normal(batch_axis=(0,)), logical_axes)
  return module.param(name, init, shape, param_dtype)


def as_compute(w, dtype):
  """Dense weights cast to the compute dtype; `ExpertWeights` stay as stored (their scheme decides)."""
  return w if isinstance(w, ExpertWeights) else w.astype(dtype)


def moe_ffn(
    x_td: jax.Array,
    router_de: jax.Array,
    gate_up,
    down,
    *,
    top_k: int,
    renormalize: bool = True,
    implementation: ImplementationArg = None,
    interpret: bool = False,
) -> tuple[jax.Array, MoEAux]:
  """Routed-experts feed-forward on one device (or under GSPMD): y[t] = sum_j w[t, j] * expert_{e[t, j]}(x[t]).

  Args:
    x_td: [T, D] tokens, in the compute dtype (the expert weights must match it).
    router_de: [D, E] router weights; logits and softmax are float32.
    gate_up: [E, D, 2F] (gate = first F columns, up = last F) or `jaxlab.quant_formats.ExpertWeights`.
    down: [E, F, D] or `ExpertWeights`.
    top_k, renormalize: see `route_top_k`.
    implementation, interpret: forwarded to `jaxlab.ops.grouped_matmul`.

  Returns:
    (y_td in x's dtype, `MoEAux`).
  """
  check_moe_inputs(x_td, router_de, gate_up, down, top_k)
  logits_te = router_logits(x_td, router_de)
  weights_tk, experts_tk, probs_te = route_top_k(logits_te, top_k, renormalize=renormalize)
  dispatch = sort_by_expert(experts_tk, router_de.shape[1])
  y_rd = swiglu_experts(
      permute(x_td, dispatch), gate_up, down, dispatch.group_sizes_e,
      implementation=implementation, interpret=interpret,
  )
  return combine(y_rd, dispatch, weights_tk), routing_aux(logits_te, probs_te, experts_tk)


class MoEFeedForward(nn.Module):
  """MoE SwiGLU block mapping [B, S, D] (or [T, D]) to the same shape, plus `MoEAux`.

  Parameters (logical axes):
    router [D, E] (embed, None): the expert dim is left unsharded on purpose, since every token
      shard scores every expert and the matrix is small;
    gate_up [E, D, 2F] (expert, embed, mlp); down [E, F, D] (expert, mlp, embed);
    shared_gate_up [1, D, 2Fs] (None, embed, mlp), shared_down [1, Fs, D] (None, mlp, embed):
      the shared experts as one SwiGLU of width Fs = `shared_d_ff`, gate = first Fs columns;
    shared_gate [D, 1] (embed, None) when `shared_expert_gate`.
  Any of gate_up, down, shared_gate_up, shared_down may be given to `apply` as
  `jaxlab.quant_formats.ExpertWeights` of the same E (1 for shared), K and N; it is used as stored.

  Expert parallelism (`expert_parallel`), decided when the module is called:
    None (default): use `moe_ffn_expert_parallel` over mesh axis "expert" exactly when a mesh
      is set with `jax.set_mesh` and its "expert" axis has size > 1; otherwise `moe_ffn`.
    False: always `moe_ffn` (GSPMD decides the layout).
    True: always expert-parallel over "expert" (a mesh with that axis must be set).
    "<axis>": always expert-parallel over that mesh axis.
  The expert-parallel path needs dense weights, E divisible by the axis size and the tokens
  divisible by the token shards (see `moe_ffn_expert_parallel`).

  Attributes:
    num_experts: routed experts E.
    top_k: experts per token.
    d_ff: hidden width F of each routed expert.
    renormalize: top-k weights sum to 1 (Mixtral, Qwen3) or stay softmax probabilities.
    num_shared_experts: 0 for none; otherwise shared experts of total width `shared_d_ff`.
    shared_d_ff: width of the shared SwiGLU; default num_shared_experts * d_ff.
    shared_expert_gate: scale the shared output by sigmoid(x @ shared_gate) (Qwen2-MoE).
    dtype: compute dtype of the expert matmuls (router and combine run in float32).
    param_dtype: parameter dtype.
    implementation, interpret: forwarded to `jaxlab.ops.grouped_matmul`.
    expert_parallel: see above.
  """

  num_experts: int
  top_k: int
  d_ff: int
  renormalize: bool = True
  num_shared_experts: int = 0
  shared_d_ff: int | None = None
  shared_expert_gate: bool = False
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  implementation: ImplementationArg = None
  interpret: bool = False
  expert_parallel: bool | str | None = None

  def _check_fields(self) -> None:
    for name in ("num_experts", "top_k", "d_ff"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"MoEFeedForward.{name} must be a positive int, got {value!r}")
    if self.top_k > self.num_experts:
      raise ValueError(f"MoEFeedForward.top_k={self.top_k} exceeds num_experts={self.num_experts}")
    shared = self.num_shared_experts
    if isinstance(shared, bool) or not isinstance(shared, int) or shared < 0:
      raise ValueError(f"MoEFeedForward.num_shared_experts must be an int >= 0, got {shared!r}")
    if self.num_shared_experts == 0 and (self.shared_d_ff is not None or self.shared_expert_gate):
      raise ValueError("MoEFeedForward: shared_d_ff / shared_expert_gate need num_shared_experts >= 1")
    if self.shared_d_ff is not None and (not isinstance(self.shared_d_ff, int) or self.shared_d_ff < 1):
      raise ValueError(f"MoEFeedForward.shared_d_ff must be a positive int or None, got {self.shared_d_ff!r}")
    if not (self.expert_parallel is None or isinstance(self.expert_parallel, (bool, str))):
      raise TypeError(
          "MoEFeedForward.expert_parallel must be None, a bool or a mesh axis name, "
          f"got {self.expert_parallel!r}"
      )

  def expert_axis(self) -> str | None:
    """The mesh axis the experts are split over under the current mesh, or None (see class docstring)."""
    if self.expert_parallel is False:
      return None
    name = self.expert_parallel if isinstance(self.expert_parallel, str) else axes.EXPERT
    mesh = ambient_mesh()
    if self.expert_parallel is None:
      return name if mesh is not None and name in mesh.axis_names and mesh.shape[name] > 1 else None
    if mesh is None or name not in mesh.axis_names:
      raise ValueError(
          f"MoEFeedForward(expert_parallel={self.expert_parallel!r}) needs a mesh with axis {name!r} "
          "set by jax.set_mesh"
      )
    return name

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, MoEAux]:
    self._check_fields()
    if x.ndim not in (2, 3):
      raise ValueError(f"MoEFeedForward input must be [B, S, D] or [T, D], got shape {x.shape}")
    expert_axis = self.expert_axis()
    d, e, f = x.shape[-1], self.num_experts, self.d_ff
    router_de = self.param(
        "router", param_with_axes(nn.initializers.lecun_normal(), (axes.EMBED, None)), (d, e), self.param_dtype
    )
    weight = lambda name, logical_axes, shape: as_compute(
        expert_param(self, name, logical_axes, shape, self.param_dtype), self.dtype
    )
    gate_up_edf = weight("gate_up", (axes.EXPERT, axes.EMBED, axes.MLP), (e, d, 2 * f))
    down_efd = weight("down", (axes.EXPERT, axes.MLP, axes.EMBED), (e, f, d))
    x_td = x.reshape(-1, d).astype(self.dtype)
    kwargs = dict(
        top_k=self.top_k, renormalize=self.renormalize, implementation=self.implementation,
        interpret=self.interpret,
    )
    if expert_axis is None:
      y_td, aux = moe_ffn(x_td, router_de, gate_up_edf, down_efd, **kwargs)
    else:
      y_td, aux = moe_ffn_expert_parallel(
          x_td, router_de, gate_up_edf, down_efd, axis_name=expert_axis, **kwargs
      )
    if self.num_shared_experts:
      fs = self.shared_d_ff or self.num_shared_experts * self.d_ff
      shared_td = dense_swiglu(
          x_td,
          weight("shared_gate_up", (None, axes.EMBED, axes.MLP), (1, d, 2 * fs)),
          weight("shared_down", (None, axes.MLP, axes.EMBED), (1, fs, d)),
          implementation=self.implementation, interpret=self.interpret,
      )
      if self.shared_expert_gate:
        gate_d1 = self.param(
            "shared_gate", param_with_axes(nn.initializers.lecun_normal(), (axes.EMBED, None)), (d, 1),
            self.param_dtype,
        )
        gate_t1 = jax.nn.sigmoid(router_logits(x_td, gate_d1))
        shared_td = (gate_t1 * shared_td.astype(jnp.float32)).astype(self.dtype)
      y_td = y_td + shared_td.astype(y_td.dtype)
    return y_td.reshape(x.shape), aux

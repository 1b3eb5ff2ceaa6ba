"""MoE decoder LMs (Mixtral, Qwen2-MoE, Qwen3-MoE) as Linen modules, plus pure layer-by-layer helpers.

Parameter tree of `MoEDecoderLM` (fixed: checkpoint conversion and quantization rely on it):

  embed/embedding [V, D]
  layers_{i}/input_norm/scale [D]
  layers_{i}/attention/{q,k,v}/kernel [D, H*hd] / [D, KV*hd]; {q,k,v}/bias when attention_bias
  layers_{i}/attention/o/kernel [H*hd, D]; o/bias when attention_out_bias
  layers_{i}/attention/{q_norm,k_norm}/scale [hd]                  (qk_norm, Qwen3-MoE)
  layers_{i}/post_attention_norm/scale [D]
  layers_{i}/moe/router [D, E]; moe/gate_up [E, D, 2F]; moe/down [E, F, D]
  layers_{i}/moe/shared_gate_up [1, D, 2Fs]; moe/shared_down [1, Fs, D]   (shared expert)
  layers_{i}/moe/shared_gate [D, 1]                                       (Qwen2-MoE gate)
  layers_{i}/mlp/gate_up [1, D, 2I]; mlp/down [1, I, D]                   (dense layers)
  final_norm/scale [D]
  lm_head/kernel [D, V]                                                   (absent when tied)

gate = first F columns of gate_up, up = last F. Every expert weight (routed, shared, dense) may
be a `jaxlab.quant_formats.ExpertWeights` of the same [E, K, N] in the params given to `apply`.

`embed_tokens`, `apply_layer`, `apply_head` and `layer_inputs` run the same modules one piece at
a time (calibration, GPTQ): apply_head(apply_layer(... apply_layer(embed_tokens(...)))) is the
model's output.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.moe.layer import MoEFeedForward, as_compute, dense_swiglu, expert_param
from jaxlab.moe.models.attention import grouped_query_attention
from jaxlab.moe.models.config import MoELMConfig
from jaxlab.moe.router import MoEAux
from jaxlab.nn import Embed, RMSNorm
from jaxlab.sharding import axes
from jaxlab.sharding.annotate import constrain, param_with_axes

_BSE = (axes.BATCH, axes.SEQ, axes.EMBED)


def _rms_norm(config: MoELMConfig, param_dtype=jnp.float32, name: str | None = None) -> RMSNorm:
  return RMSNorm(eps=config.rms_norm_eps, rounding="transformers", param_dtype=param_dtype, name=name)


class MoELMAux(NamedTuple):
  """Router statistics of a whole model call.

  Attributes:
    load_balancing_loss: float32 sum over the MoE layers of each layer's `MoEAux` loss (scale it
      by `config.router_aux_loss_coef` in a training loss). transformers' `aux_loss` instead pools
      the statistics of all layers before multiplying; compute it from the fields below if needed.
    router_z_loss: float32 sum over the MoE layers.
    tokens_per_expert: [L, E] int32 (token, slot) assignments per layer; zero rows for dense layers.
    router_probs_mean: [L, E] float32 mean router probability per layer; zero rows for dense layers.
  """

  load_balancing_loss: jax.Array
  router_z_loss: jax.Array
  tokens_per_expert: jax.Array
  router_probs_mean: jax.Array


def stack_aux(per_layer: list[MoEAux]) -> MoELMAux:
  """Sums the losses and stacks the per-expert statistics of the layers' `MoEAux`."""
  return MoELMAux(
      load_balancing_loss=sum(a.load_balancing_loss for a in per_layer),
      router_z_loss=sum(a.router_z_loss for a in per_layer),
      tokens_per_expert=jnp.stack([a.tokens_per_expert for a in per_layer]),
      router_probs_mean=jnp.stack([a.router_probs_mean for a in per_layer]),
  )


def _dense_aux(num_experts: int) -> MoEAux:
  zero = jnp.zeros((), jnp.float32)
  return MoEAux(zero, zero, jnp.zeros((num_experts,), jnp.int32), jnp.zeros((num_experts,), jnp.float32))


class DenseFeedForward(nn.Module):
  """A dense layer's SwiGLU, stored as one expert (gate_up [1, D, 2I], down [1, I, D]) so it quantizes alike."""

  d_ff: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  implementation: Any = None

  @nn.compact
  def __call__(self, x_btd: jax.Array) -> jax.Array:
    d = x_btd.shape[-1]
    weight = lambda name, logical_axes, shape: as_compute(
        expert_param(self, name, logical_axes, shape, self.param_dtype), self.dtype
    )
    gate_up = weight("gate_up", (None, axes.EMBED, axes.MLP), (1, d, 2 * self.d_ff))
    down = weight("down", (None, axes.MLP, axes.EMBED), (1, self.d_ff, d))
    y_td = dense_swiglu(x_btd.reshape(-1, d).astype(self.dtype), gate_up, down, implementation=self.implementation)
    return y_td.reshape(x_btd.shape)


class MoEDecoderLayer(nn.Module):
  """Pre-norm attention, then a pre-norm MoE (or dense, `sparse=False`) SwiGLU, each with a residual.

  Returns (x_btd, MoEAux); a dense layer returns an all-zero `MoEAux`.
  """

  config: MoELMConfig
  sparse: bool = True
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_btd: jax.Array, positions_bt: jax.Array) -> tuple[jax.Array, MoEAux]:
    c = self.config
    dtype = jnp.dtype(c.dtype)
    norm = lambda name: _rms_norm(c, self.param_dtype, name)
    x_btd = x_btd.astype(dtype)
    attention = grouped_query_attention(c, self.param_dtype, name="attention")
    y_btd, _ = attention(norm("input_norm")(x_btd), positions_bt)
    x_btd = constrain(x_btd + y_btd, _BSE)
    h_btd = norm("post_attention_norm")(x_btd)
    if self.sparse:
      shared = c.shared_expert_intermediate_size
      moe = MoEFeedForward(
          num_experts=c.num_experts, top_k=c.top_k, d_ff=c.moe_intermediate_size, renormalize=c.norm_topk_prob,
          num_shared_experts=1 if shared else 0, shared_d_ff=shared or None,
          shared_expert_gate=c.shared_expert_gate,
          dtype=dtype, param_dtype=self.param_dtype, implementation=c.moe_implementation,
          expert_parallel=c.expert_parallel, name="moe",
      )
      y_btd, aux = moe(h_btd)
    else:
      mlp = DenseFeedForward(c.intermediate_size, dtype, self.param_dtype, c.moe_implementation, name="mlp")
      y_btd, aux = mlp(h_btd), _dense_aux(c.num_experts)
    return constrain(x_btd + y_btd.astype(dtype), _BSE), aux


def _logits(x_btd: jax.Array, table: jax.Array, tied: bool, dtype) -> jax.Array:
  """[B, T, V] float32 logits from the embedding table [V, D] (tied) or lm_head kernel [D, V]."""
  spec = "btd,vd->btv" if tied else "btd,dv->btv"
  logits = jnp.einsum(spec, x_btd.astype(dtype), table.astype(dtype), preferred_element_type=jnp.float32)
  return constrain(logits, (axes.BATCH, axes.SEQ, axes.VOCAB))


def _check_tokens(tokens_bt, positions_bt):
  if not hasattr(tokens_bt, "ndim") or tokens_bt.ndim != 2:
    got = getattr(tokens_bt, "shape", type(tokens_bt).__name__)
    raise ValueError(f"tokens_bt must be a [B, T] integer array, got {got}")
  if not jnp.issubdtype(tokens_bt.dtype, jnp.integer):
    raise TypeError(f"tokens_bt must be an integer array, got {tokens_bt.dtype}")
  if positions_bt is None:
    return jnp.broadcast_to(jnp.arange(tokens_bt.shape[1], dtype=jnp.int32), tokens_bt.shape)
  if getattr(positions_bt, "shape", None) != tokens_bt.shape:
    raise ValueError(
        f"positions_bt must have tokens_bt's shape {tokens_bt.shape}, got {getattr(positions_bt, 'shape', None)}"
    )
  return positions_bt


class MoEDecoderLM(nn.Module):
  """Token ids [B, T] -> (next-token logits [B, T, V] float32, `MoELMAux`); params: see the module docstring."""

  config: MoELMConfig
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, tokens_bt: jax.Array, positions_bt: jax.Array | None = None) -> tuple[jax.Array, MoELMAux]:
    c = self.config
    dtype = jnp.dtype(c.dtype)
    positions_bt = _check_tokens(tokens_bt, positions_bt)
    embed = Embed(c.vocab_size, c.hidden_size, dtype=dtype, param_dtype=self.param_dtype, name="embed")
    x_btd = constrain(embed(tokens_bt), _BSE)
    per_layer = []
    for i in range(c.num_layers):
      layer = MoEDecoderLayer(c, c.is_moe_layer(i), self.param_dtype, name=f"layers_{i}")
      x_btd, aux = layer(x_btd, positions_bt)
      per_layer.append(aux)
    x_btd = _rms_norm(c, self.param_dtype, "final_norm")(x_btd)
    if c.tie_word_embeddings:
      table = embed.table_vd
    else:
      table = _LMHead(c.vocab_size, self.param_dtype, name="lm_head")(x_btd)
    return _logits(x_btd, table, c.tie_word_embeddings, dtype), stack_aux(per_layer)


class _LMHead(nn.Module):
  """Owns lm_head/kernel [D, V]; returns the kernel (the projection is shared with `apply_head`)."""

  vocab_size: int
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_btd: jax.Array) -> jax.Array:
    init = param_with_axes(nn.initializers.lecun_normal(), (axes.EMBED, axes.VOCAB))
    return self.param("kernel", init, (x_btd.shape[-1], self.vocab_size), self.param_dtype)


# Pure helpers. Each is jitted with the (hashable, frozen) config static, so layers of one shape
# compile once.


@functools.partial(jax.jit, static_argnums=0)
def embed_tokens(config: MoELMConfig, params, tokens_bt: jax.Array) -> jax.Array:
  """[B, T] token ids -> [B, T, D] embeddings in the compute dtype (the input of layer 0)."""
  _check_tokens(tokens_bt, None)
  embed = Embed(config.vocab_size, config.hidden_size, dtype=jnp.dtype(config.dtype))
  return embed.apply({"params": params["embed"]}, tokens_bt)


@functools.partial(jax.jit, static_argnums=0)
def apply_layer(config: MoELMConfig, layer_params, x_btd: jax.Array, positions_bt: jax.Array | None = None):
  """One decoder layer from its params (`params["layers_{i}"]`): returns (y_btd, MoEAux).

  Whether the layer is MoE or dense is read from its params ("moe" or "mlp").
  """
  if "moe" not in layer_params and "mlp" not in layer_params:
    raise ValueError(
        f"layer_params must hold 'moe' or 'mlp' (a layers_{{i}} subtree), got keys {sorted(layer_params)}"
    )
  if getattr(x_btd, "ndim", None) != 3 or x_btd.shape[-1] != config.hidden_size:
    raise ValueError(f"x_btd must have shape [B, T, D={config.hidden_size}], got {getattr(x_btd, 'shape', None)}")
  positions_bt = _check_tokens(jnp.zeros(x_btd.shape[:2], jnp.int32), positions_bt)
  layer = MoEDecoderLayer(config, "moe" in layer_params)
  return layer.apply({"params": layer_params}, x_btd, positions_bt)


@functools.partial(jax.jit, static_argnums=0)
def apply_head(config: MoELMConfig, params, x_btd: jax.Array) -> jax.Array:
  """Final norm and unembedding of the last layer's output: [B, T, D] -> [B, T, V] float32 logits."""
  x_btd = _rms_norm(config).apply({"params": params["final_norm"]}, x_btd)
  tied = config.tie_word_embeddings
  table = params["embed"]["embedding"] if tied else params["lm_head"]["kernel"]
  return _logits(x_btd, table, tied, jnp.dtype(config.dtype))


def layer_inputs(config: MoELMConfig, params, tokens_bt: jax.Array, positions_bt=None) -> list[jax.Array]:
  """The input [B, T, D] of every layer, in order (L arrays; the last layer's output is not included)."""
  x_btd = embed_tokens(config, params, tokens_bt)
  inputs = []
  for i in range(config.num_layers):
    inputs.append(x_btd)
    x_btd, _ = apply_layer(config, params[f"layers_{i}"], x_btd, positions_bt)
  return inputs

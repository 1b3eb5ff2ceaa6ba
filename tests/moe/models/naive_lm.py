"""A float64 numpy forward of the MoE decoder LM from its param tree, written from the HF model definitions.

Independent of jaxlab: per-head loops for attention, a per-token loop for the experts
(`tests.moe.naive`), RoPE from its formula. Also `random_params`, which draws every parameter
of a param tree with a scale that keeps activations O(1) (norm gains and biases non-trivial).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.moe.models import MoEDecoderLM
from tests.moe import naive


def random_params(config, seed: int, dtype=np.float32) -> dict:
  """Random params of `config`'s tree: kernels ~ N(0, 1/fan_in), gains 1 + N(0, 0.2^2), biases N(0, 0.2^2)."""
  rng = np.random.default_rng(seed)
  shapes = nn.unbox(jax.eval_shape(MoEDecoderLM(config).init, jax.random.key(0), jnp.zeros((1, 1), jnp.int32)))

  def draw(path, s):
    name = path[-1].key
    if name == "scale":
      value = 1.0 + 0.2 * rng.normal(size=s.shape)
    elif name == "bias":
      value = 0.2 * rng.normal(size=s.shape)
    elif name == "embedding":
      value = rng.normal(size=s.shape)
    else:  # Kernels [K, N] and expert stacks [E, K, N]: fan-in K.
      value = rng.normal(size=s.shape) / np.sqrt(s.shape[-2])
    return jnp.asarray(value, dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes["params"])


def _f64(x):
  return np.asarray(x, np.float64)


def rms_norm(x, scale, eps):
  return x / np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + eps) * _f64(scale)


def rope(x_bthk, positions_bt, theta):
  """Rotates dimension i with i + hd/2 by angle position * theta^(-2i/hd)."""
  half = x_bthk.shape[-1] // 2
  angle_btf = _f64(positions_bt)[..., None] * theta ** (-2.0 * np.arange(half) / x_bthk.shape[-1])
  cos, sin = np.cos(angle_btf)[:, :, None, :], np.sin(angle_btf)[:, :, None, :]
  x1, x2 = x_bthk[..., :half], x_bthk[..., half:]
  return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def _linear(x, p):
  y = x @ _f64(p["kernel"])
  return y + _f64(p["bias"]) if "bias" in p else y


def attention(c, p, x_btd, positions_bt):
  b, t, _ = x_btd.shape
  h, kv, hd = c.num_heads, c.num_kv_heads, c.head_dim
  q = _linear(x_btd, p["q"]).reshape(b, t, h, hd)
  k = _linear(x_btd, p["k"]).reshape(b, t, kv, hd)
  v = _linear(x_btd, p["v"]).reshape(b, t, kv, hd)
  if c.qk_norm:
    q, k = rms_norm(q, p["q_norm"]["scale"], c.rms_norm_eps), rms_norm(k, p["k_norm"]["scale"], c.rms_norm_eps)
  q, k = rope(q, positions_bt, c.rope_theta), rope(k, positions_bt, c.rope_theta)
  out = np.zeros((b, t, h, hd))
  for head in range(h):
    group = head // (h // kv)  # transformers' repeat_kv: query head h reads kv head h // (H / KV).
    for i in range(b):
      scores = q[i, :, head] @ k[i, :, group].T / np.sqrt(hd)
      scores = np.where(np.tril(np.ones((t, t), bool)), scores, -np.inf)
      out[i, :, head] = naive.softmax_np(scores) @ v[i, :, group]
  return _linear(out.reshape(b, t, h * hd), p["o"])


def _swiglu_one(x_td, gate_up_1df2, down_1fd):
  gate_up = _f64(gate_up_1df2)[0]
  f = gate_up.shape[1] // 2
  return naive.shared_np(x_td, gate_up[:, :f], gate_up[:, f:], _f64(down_1fd)[0])


def ffn(c, p, x_td):
  """(y_td, experts_tk or None, probs_te or None)."""
  if "mlp" in p:
    return _swiglu_one(x_td, p["mlp"]["gate_up"], p["mlp"]["down"]), None, None
  m = p["moe"]
  y_td, experts_tk, probs_te = naive.moe_loop_np(
      x_td, m["router"], m["gate_up"], m["down"], c.top_k, c.norm_topk_prob
  )
  if "shared_gate_up" in m:
    shared_td = _swiglu_one(x_td, m["shared_gate_up"], m["shared_down"])
    if "shared_gate" in m:
      shared_td = shared_td / (1.0 + np.exp(-(x_td @ _f64(m["shared_gate"]))))
    y_td = y_td + shared_td
  return y_td, experts_tk, probs_te


def forward(c, params, tokens_bt, positions_bt=None):
  """(logits [B, T, V] float64, [(experts_tk, probs_te) or None per layer])."""
  tokens_bt = np.asarray(tokens_bt)
  if positions_bt is None:
    positions_bt = np.broadcast_to(np.arange(tokens_bt.shape[1]), tokens_bt.shape)
  x = _f64(params["embed"]["embedding"])[tokens_bt]
  routing = []
  for i in range(c.num_layers):
    p = params[f"layers_{i}"]
    x = x + attention(c, p["attention"], rms_norm(x, p["input_norm"]["scale"], c.rms_norm_eps), positions_bt)
    h = rms_norm(x, p["post_attention_norm"]["scale"], c.rms_norm_eps)
    y_td, experts_tk, probs_te = ffn(c, p, h.reshape(-1, c.hidden_size))
    x = x + y_td.reshape(x.shape)
    routing.append(None if experts_tk is None else (experts_tk, probs_te))
  x = rms_norm(x, params["final_norm"]["scale"], c.rms_norm_eps)
  head = _f64(params["embed"]["embedding"]).T if c.tie_word_embeddings else _f64(params["lm_head"]["kernel"])
  return x @ head, routing

"""Tests for `jaxlab.mxmoe.rotation`: a rotated MoE LM computes the same logits and routing."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.mxmoe.rotation import rotate_moe_lm

# A self-contained NumPy float64 forward of the MoE decoder LM param tree, and its rotation.

V, H, HD, E, TOP_K, F, FS, LAYERS = 40, 4, 16, 6, 2, 24, 40, 2
EPS = 1e-6


def _rms_norm(x, scale):
  return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * scale


def _rope(x_thd):
  t, _, hd = x_thd.shape
  inv_freq = 1.0 / 10_000.0 ** (np.arange(0, hd, 2) / hd)
  angle = np.arange(t)[:, None] * inv_freq[None, :]
  cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
  x1, x2 = x_thd[..., : hd // 2], x_thd[..., hd // 2 :]
  return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def _attention(h_td, p):
  t = h_td.shape[0]
  proj = {}
  for name in ("q", "k", "v"):
    y = h_td @ p[name]["kernel"]
    if "bias" in p[name]:
      y = y + p[name]["bias"]
    proj[name] = y.reshape(t, H, HD)
  q_thd, k_thd = _rope(proj["q"]), _rope(proj["k"])
  logits_htt = np.einsum("qhd,khd->hqk", q_thd, k_thd) / np.sqrt(HD)
  logits_htt = np.where(np.tril(np.ones((t, t), bool)), logits_htt, -np.inf)
  probs = np.exp(logits_htt - logits_htt.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  out_td = np.einsum("hqk,khd->qhd", probs, proj["v"]).reshape(t, H * HD)
  out_td = out_td @ p["o"]["kernel"]
  return out_td + p["o"]["bias"] if "bias" in p["o"] else out_td


def _swiglu(h_td, gate_up_df, down_fd):
  f = gate_up_df.shape[1] // 2
  g, u = h_td @ gate_up_df[:, :f], h_td @ gate_up_df[:, f:]
  return (g / (1 + np.exp(-g)) * u) @ down_fd


def _moe(h_td, p, routes):
  logits_te = h_td @ p["router"]
  probs = np.exp(logits_te - logits_te.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  experts_tk = np.argsort(-probs, axis=-1, kind="stable")[:, :TOP_K]
  routes.append((logits_te, experts_tk))
  out_td = np.zeros_like(h_td)
  for t in range(h_td.shape[0]):
    weights = probs[t, experts_tk[t]] / probs[t, experts_tk[t]].sum()
    for weight, e in zip(weights, experts_tk[t]):
      out_td[t] += weight * _swiglu(h_td[t:t + 1], p["gate_up"][e], p["down"][e])[0]
  if "shared_gate_up" in p:
    shared = _swiglu(h_td, p["shared_gate_up"][0], p["shared_down"][0])
    if "shared_gate" in p:
      shared = shared / (1 + np.exp(-(h_td @ p["shared_gate"])))
    out_td += shared
  return out_td


def _forward(params, ids_t):
  """(logits [T, V], per layer (router logits, top-k experts)) in float64."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  x_td = p["embed"]["embedding"][ids_t]
  routes = []
  for i in range(LAYERS):
    layer = p[f"layers_{i}"]
    x_td = x_td + _attention(_rms_norm(x_td, layer["input_norm"]["scale"]), layer["attention"])
    h_td = _rms_norm(x_td, layer["post_attention_norm"]["scale"])
    if "mlp" in layer:
      x_td = x_td + _swiglu(h_td, layer["mlp"]["gate_up"][0], layer["mlp"]["down"][0])
    else:
      x_td = x_td + _moe(h_td, layer["moe"], routes)
  x_td = _rms_norm(x_td, p["final_norm"]["scale"])
  head_dv = p["lm_head"]["kernel"] if "lm_head" in p else p["embed"]["embedding"].T
  return x_td @ head_dv, routes


def _params(d, *, tied, shared, biases, dense_first=False, seed=0):
  rng = np.random.default_rng(seed)
  normal = lambda *shape: (rng.normal(size=shape) / np.sqrt(shape[-2])).astype(np.float32)
  norm = lambda: {"scale": rng.uniform(0.3, 2.0, d).astype(np.float32)}
  tree = {"embed": {"embedding": rng.normal(size=(V, d)).astype(np.float32)}, "final_norm": norm()}
  if not tied:
    tree["lm_head"] = {"kernel": normal(d, V)}
  for i in range(LAYERS):
    attention = {name: {"kernel": normal(d, H * HD)} for name in ("q", "k", "v")}
    attention["o"] = {"kernel": normal(H * HD, d)}
    if biases:
      for name in ("q", "k", "v"):
        attention[name]["bias"] = rng.normal(size=H * HD).astype(np.float32)
      attention["o"]["bias"] = rng.normal(size=d).astype(np.float32) * 0.1
    moe = {"router": normal(d, E) * 3, "gate_up": normal(E, d, 2 * F), "down": normal(E, F, d)}
    if shared:
      moe.update(shared_gate_up=normal(1, d, 2 * FS), shared_down=normal(1, FS, d), shared_gate=normal(d, 1))
    tree[f"layers_{i}"] = {"input_norm": norm(), "attention": attention, "post_attention_norm": norm()}
    if dense_first and i == 0:
      tree[f"layers_{i}"]["mlp"] = {"gate_up": normal(1, d, 2 * FS), "down": normal(1, FS, d)}
    else:
      tree[f"layers_{i}"]["moe"] = moe
  return jax.tree.map(jnp.asarray, tree)


@dataclasses.dataclass(frozen=True)
class _Config:
  num_layers: int
  tie_word_embeddings: bool


@pytest.mark.parametrize(
    "d, tied, shared, biases, dense_first",
    [(64, True, True, True, False), (96, False, False, False, True), (128, False, True, False, False)],
)
def test_rotate_moe_lm_keeps_the_function(d, tied, shared, biases, dense_first):
  params = _params(d, tied=tied, shared=shared, biases=biases, dense_first=dense_first)
  before = jax.tree.map(np.array, params)
  ids_t = np.random.default_rng(1).integers(0, V, size=10)
  logits, routes = _forward(params, ids_t)

  rotated = rotate_moe_lm(_Config(LAYERS, tied), params, jax.random.key(d))
  logits_rot, routes_rot = _forward(rotated, ids_t)
  np.testing.assert_allclose(logits_rot, logits, rtol=1e-5, atol=1e-5 * np.abs(logits).max())
  assert len(routes_rot) == len(routes) == LAYERS - dense_first
  for (router, experts), (router_rot, experts_rot) in zip(routes, routes_rot):
    np.testing.assert_allclose(router_rot, router, rtol=1e-5, atol=1e-5 * np.abs(router).max())
    np.testing.assert_array_equal(experts_rot, experts)
  # Routing is non-trivial: tokens do not all pick the same experts.
  assert len({tuple(row) for row in routes[0][1]}) > 2

  # The weights really changed, the norms are now plain, the head is explicit, dtypes kept.
  assert not np.allclose(np.asarray(rotated["embed"]["embedding"]), before["embed"]["embedding"], atol=1e-2)
  for i in range(LAYERS):
    for norm in ("input_norm", "post_attention_norm"):
      np.testing.assert_array_equal(np.asarray(rotated[f"layers_{i}"][norm]["scale"]), 1.0)
  np.testing.assert_array_equal(np.asarray(rotated["final_norm"]["scale"]), 1.0)
  assert rotated["lm_head"]["kernel"].shape == (d, V)
  assert jax.tree.map(lambda a: a.dtype, rotated) == jax.tree.map(
      lambda a: a.dtype, {**params, "lm_head": {"kernel": params["embed"]["embedding"].T}}
  )
  # The caller's tree is untouched.
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, params), before)

  # The check can fail: keeping the final norm's scale after fusing it changes the function.
  broken = jax.tree.map(lambda a: a, rotated)
  broken["final_norm"] = params["final_norm"]
  assert not np.allclose(_forward(broken, ids_t)[0], logits, rtol=1e-3, atol=1e-3)


def test_rotate_moe_lm_wrapped_tree_and_same_key():
  params = _params(64, tied=False, shared=False, biases=False)
  a = rotate_moe_lm(None, {"params": params}, jax.random.key(0))
  b = rotate_moe_lm(None, params, jax.random.key(0))
  assert set(a) == {"params"}
  jax.tree.map(np.testing.assert_array_equal, a["params"], b)


def test_rotate_moe_lm_keeps_flax_boxes():
  """Leaves boxed with logical axes (as a Linen `init` returns them) come back boxed, axes kept."""
  params = _params(64, tied=False, shared=False, biases=False)
  boxed = jax.tree.map(lambda a: a, params)
  boxed["embed"]["embedding"] = nn.LogicallyPartitioned(params["embed"]["embedding"], ("vocab", "embed"))
  down = params["layers_1"]["moe"]["down"]
  boxed["layers_1"]["moe"]["down"] = nn.LogicallyPartitioned(down, ("expert", "mlp", "embed"))
  rotated = rotate_moe_lm(None, boxed, jax.random.key(0))
  plain = rotate_moe_lm(None, params, jax.random.key(0))
  for box, want in ((rotated["embed"]["embedding"], plain["embed"]["embedding"]),
                    (rotated["layers_1"]["moe"]["down"], plain["layers_1"]["moe"]["down"])):
    assert isinstance(box, nn.LogicallyPartitioned) and box.names[-1] == "embed"
    np.testing.assert_array_equal(np.asarray(box.unbox()), np.asarray(want))


def test_rotate_moe_lm_errors():
  params = _params(64, tied=False, shared=False, biases=False)
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="tie_word_embeddings"):
    rotate_moe_lm(_Config(LAYERS, True), params, key)
  with pytest.raises(ValueError, match="num_layers"):
    rotate_moe_lm(_Config(3, False), params, key)
  extra = jax.tree.map(lambda a: a, params)
  extra["layers_1"]["moe"]["router_bias"] = jnp.zeros(E)
  with pytest.raises(ValueError, match="router_bias"):
    rotate_moe_lm(None, extra, key)
  missing = jax.tree.map(lambda a: a, params)
  del missing["layers_0"]["moe"]["down"]
  with pytest.raises(ValueError, match="layers_0/moe/down"):
    rotate_moe_lm(None, missing, key)
  wrong = jax.tree.map(lambda a: a, params)
  wrong["layers_1"]["attention"]["o"]["kernel"] = jnp.zeros((H * HD, 32))
  with pytest.raises(ValueError, match="layers_1/attention/o/kernel"):
    rotate_moe_lm(None, wrong, key)
  both = jax.tree.map(lambda a: a, params)
  both["layers_0"]["mlp"] = {"gate_up": jnp.zeros((1, 64, 8)), "down": jnp.zeros((1, 4, 64))}
  with pytest.raises(ValueError, match="exactly one of 'moe' or 'mlp'"):
    rotate_moe_lm(None, both, key)
  with pytest.raises(TypeError, match="key"):
    rotate_moe_lm(None, params, 0)

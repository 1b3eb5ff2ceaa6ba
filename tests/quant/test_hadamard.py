"""Tests for `jaxlab.quant.hadamard`: orthogonality, the weight rotations, and an unchanged MoE LM forward."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.quant import hadamard

EPS = 1e-6


@pytest.mark.parametrize("n", [64, 96, 128, 256])
def test_orthogonal(n):
  q = np.asarray(hadamard.random_hadamard_matrix(n, jax.random.key(n)))
  assert q.shape == (n, n) and q.dtype == np.float32
  q64 = q.astype(np.float64)
  np.testing.assert_allclose(q64 @ q64.T, np.eye(n), atol=2e-6)
  np.testing.assert_allclose(q64.T @ q64, np.eye(n), atol=2e-6)


@pytest.mark.parametrize("n", [1, 2, 64, 256])
def test_power_of_two_is_a_sign_flipped_sylvester_matrix(n):
  """Q[i, j] = s_i (-1)^popcount(i & j) / sqrt(n): the Sylvester entry formula, one sign per row."""
  q = np.asarray(hadamard.random_hadamard_matrix(n, jax.random.key(1)), np.float64)
  i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
  parity = np.vectorize(lambda a: bin(a).count("1") % 2)(i & j)
  sylvester = np.where(parity == 1, -1.0, 1.0) / np.sqrt(n)
  signs = q[:, 0] * np.sqrt(n)
  np.testing.assert_allclose(np.abs(signs), 1.0, rtol=1e-6)
  np.testing.assert_allclose(q, np.sign(signs)[:, None] * sylvester, rtol=1e-6)
  if n >= 64:
    assert 0 < np.sum(signs > 0) < n  # The signs are random, not all equal.


def test_keys():
  a = hadamard.random_hadamard_matrix(96, jax.random.key(0))
  again = hadamard.random_hadamard_matrix(96, jax.random.key(0))
  np.testing.assert_array_equal(np.asarray(a), np.asarray(again))
  assert not np.allclose(np.asarray(a), np.asarray(hadamard.random_hadamard_matrix(96, jax.random.key(1))))
  legacy = hadamard.random_hadamard_matrix(8, jax.random.PRNGKey(0))  # Raw uint32 keys work too.
  assert legacy.shape == (8, 8)


def test_spreads_an_outlier_channel():
  """The point of the rotation: one huge channel is spread evenly over all channels."""
  n = 128
  x = np.random.default_rng(0).normal(size=(4, n)) * 0.01
  x[:, 5] = 100.0
  y = x @ np.asarray(hadamard.random_hadamard_matrix(n, jax.random.key(2)), np.float64)
  np.testing.assert_allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1), rtol=1e-6)
  assert np.abs(y).max() < 1.2 * np.linalg.norm(x, axis=1).max() / np.sqrt(n)


def _rms_norm(x, scale):
  return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * scale


def test_fuse_and_rotate_helpers():
  rng = np.random.default_rng(3)
  d, n = 96, 20
  x = rng.normal(size=(5, d))
  scale = rng.uniform(0.5, 1.5, d).astype(np.float32)
  w = rng.normal(size=(3, d, n)).astype(np.float32)  # A stack of experts.
  fused = np.asarray(hadamard.fuse_rms_norm_scale(jnp.asarray(scale), jnp.asarray(w)))
  assert fused.dtype == np.float32
  for e in range(3):
    np.testing.assert_allclose(_rms_norm(x, 1.0) @ fused[e], _rms_norm(x, scale) @ w[e], rtol=1e-5, atol=1e-5)
  q = np.asarray(hadamard.random_hadamard_matrix(d, jax.random.key(4)), np.float64)
  q32 = jnp.asarray(q, jnp.float32)
  rotated = np.asarray(hadamard.rotate_input_side(jnp.asarray(w), q32), np.float64)
  for e in range(3):
    np.testing.assert_allclose(rotated[e], q.T @ w[e], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose((x @ q) @ rotated[e], x @ w[e], rtol=1e-4, atol=1e-5)
  w_nd = rng.normal(size=(n, d)).astype(np.float32)
  bias_d = rng.normal(size=d).astype(np.float32)
  for rotate, a in ((hadamard.rotate_output_side, w_nd), (hadamard.rotate_output_side, bias_d),
                    (hadamard.rotate_embedding, w_nd)):
    np.testing.assert_allclose(np.asarray(rotate(jnp.asarray(a), q32)), a @ q, rtol=1e-5, atol=1e-6)
  bf16 = hadamard.rotate_input_side(jnp.asarray(w[0], jnp.bfloat16), q32)
  assert bf16.dtype == jnp.bfloat16


# ---------------------------------------------------------------------------------------------
# A self-contained NumPy float64 forward of the MoE decoder LM param tree, and its rotation.

V, H, HD, E, TOP_K, F, FS, LAYERS = 40, 4, 16, 6, 2, 24, 40, 2


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

  rotated = hadamard.rotate_moe_lm(_Config(LAYERS, tied), params, jax.random.key(d))
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
  a = hadamard.rotate_moe_lm(None, {"params": params}, jax.random.key(0))
  b = hadamard.rotate_moe_lm(None, params, jax.random.key(0))
  assert set(a) == {"params"}
  jax.tree.map(np.testing.assert_array_equal, a["params"], b)


def test_rotate_moe_lm_keeps_flax_boxes():
  """Leaves boxed with logical axes (as a Linen `init` returns them) come back boxed, axes kept."""
  params = _params(64, tied=False, shared=False, biases=False)
  boxed = jax.tree.map(lambda a: a, params)
  boxed["embed"]["embedding"] = nn.LogicallyPartitioned(params["embed"]["embedding"], ("vocab", "embed"))
  down = params["layers_1"]["moe"]["down"]
  boxed["layers_1"]["moe"]["down"] = nn.LogicallyPartitioned(down, ("expert", "mlp", "embed"))
  rotated = hadamard.rotate_moe_lm(None, boxed, jax.random.key(0))
  plain = hadamard.rotate_moe_lm(None, params, jax.random.key(0))
  for box, want in ((rotated["embed"]["embedding"], plain["embed"]["embedding"]),
                    (rotated["layers_1"]["moe"]["down"], plain["layers_1"]["moe"]["down"])):
    assert isinstance(box, nn.LogicallyPartitioned) and box.names[-1] == "embed"
    np.testing.assert_array_equal(np.asarray(box.unbox()), np.asarray(want))


def test_errors():
  params = _params(64, tied=False, shared=False, biases=False)
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="tie_word_embeddings"):
    hadamard.rotate_moe_lm(_Config(LAYERS, True), params, key)
  with pytest.raises(ValueError, match="num_layers"):
    hadamard.rotate_moe_lm(_Config(3, False), params, key)
  extra = jax.tree.map(lambda a: a, params)
  extra["layers_1"]["moe"]["router_bias"] = jnp.zeros(E)
  with pytest.raises(ValueError, match="router_bias"):
    hadamard.rotate_moe_lm(None, extra, key)
  missing = jax.tree.map(lambda a: a, params)
  del missing["layers_0"]["moe"]["down"]
  with pytest.raises(ValueError, match="layers_0/moe/down"):
    hadamard.rotate_moe_lm(None, missing, key)
  wrong = jax.tree.map(lambda a: a, params)
  wrong["layers_1"]["attention"]["o"]["kernel"] = jnp.zeros((H * HD, 32))
  with pytest.raises(ValueError, match="layers_1/attention/o/kernel"):
    hadamard.rotate_moe_lm(None, wrong, key)
  both = jax.tree.map(lambda a: a, params)
  both["layers_0"]["mlp"] = {"gate_up": jnp.zeros((1, 64, 8)), "down": jnp.zeros((1, 4, 64))}
  with pytest.raises(ValueError, match="exactly one of 'moe' or 'mlp'"):
    hadamard.rotate_moe_lm(None, both, key)
  with pytest.raises(TypeError, match="key"):
    hadamard.rotate_moe_lm(None, params, 0)
  with pytest.raises(ValueError, match="n must be a positive int"):
    hadamard.random_hadamard_matrix(0, key)
  with pytest.raises(ValueError, match="norm_scale_d"):
    hadamard.fuse_rms_norm_scale(jnp.ones(8), jnp.ones((4, 3)))
  with pytest.raises(ValueError, match="q_dd"):
    hadamard.rotate_input_side(jnp.ones((8, 3)), jnp.eye(4))

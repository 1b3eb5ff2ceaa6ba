"""LoRA adapters: targets of the VLM, zero-B identity, merged equals unmerged (layer and whole model),
gradients to the adapters only, the frozen-base optimizer, sharded init, and the errors."""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlab.models import DecoderLM, DecoderLMConfig
from jaxlab.models.qwen2 import Qwen2Config, Qwen2LM
from jaxlab.nn import Dense
from jaxlab.nn.lora import (
    DEFAULT_TARGETS,
    LoraConfig,
    apply_with_lora,
    init_lora,
    lora_optimizer,
    lora_targets,
    merge_lora,
    num_params,
)
from jaxlab.sharding import EMBED, MLP, init_sharded, logical_rules, logical_to_shardings, make_mesh
from jaxlab.vlm import InternVisionConfig, InternVLConfig, ProjectorConfig
from jaxlab.vlm.model import init_variables

# The language model's seven projections of InternVLModel, and nothing of the vision tower or projector.
VLM_TARGETS = (r"^language_model/layers_\d+/attention/(q|k|v|o)/kernel$",
               r"^language_model/layers_\d+/mlp/(gate|up|down)/kernel$")
# The same projections of a bare Qwen2LM (no "language_model/" prefix).
QWEN2_TARGETS = (r"^layers_\d+/attention/(q|k|v|o)/kernel$", r"^layers_\d+/mlp/(gate|up|down)/kernel$")
DECODER_TARGETS = (r"^layer_\d+/attention/w(q|k|v|o)$", r"^layer_\d+/mlp/w_(gate|up|down)$")

TEXT = Qwen2Config(vocab_size=48, hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
                   num_key_value_heads=1, max_position_embeddings=64, attention_bias=True)
VISION = InternVisionConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                            image_size=(56, 56), patch_size=(14, 14), attention_bias=True)
VLM = InternVLConfig(vision=VISION, projector=ProjectorConfig(16, 16), text=TEXT, image_token_id=7)
LM = Qwen2LM(TEXT)
CONFIG = LoraConfig(rank=4, alpha=8.0, targets=QWEN2_TARGETS)
IDS = jnp.asarray(np.random.default_rng(0).integers(0, TEXT.vocab_size, (2, 6)), jnp.int32)


def path_of(path) -> str:
  return jax.tree_util.keystr(path, simple=True, separator="/")


def draw_like(tree, seed, std=0.5):
  """Random float32 arrays shaped like the (possibly boxed, abstract) leaves of `tree` (no init compiled)."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(std * rng.normal(size=s.shape), jnp.float32), nn.unbox(tree))


@functools.cache
def vlm_abstract():
  return jax.eval_shape(lambda key: init_variables(VLM, key), jax.random.key(0))["params"]


@functools.cache
def lm_abstract():
  return jax.eval_shape(LM.init, jax.random.key(0), IDS)["params"]


@functools.cache
def lm_params():
  return draw_like(lm_abstract(), seed=1)


def adapters(lora) -> dict:
  """{kernel path: (A, B)} of a LoRA tree, walked by hand."""
  found = {}

  def walk(node, prefix):
    if set(node) == {"a", "b"} and not isinstance(node["a"], dict):
      found[prefix] = (node["a"], node["b"])
      return
    for k, sub in node.items():
      walk(sub, f"{prefix}/{k}" if prefix else k)

  walk(lora, "")
  return found


def test_targets_pick_the_language_model_projections_of_the_vlm():
  abstract = vlm_abstract()
  layer = "language_model/layers_0"
  want = {f"{layer}/attention/{p}/kernel" for p in "qkvo"} | {f"{layer}/mlp/{p}/kernel" for p in ("gate", "up", "down")}
  assert set(lora_targets(abstract, LoraConfig(targets=VLM_TARGETS))) == want
  assert set(lora_targets(abstract, LoraConfig())) == want  # DEFAULT_TARGETS: the same, tower and projector untouched
  assert LoraConfig().targets == DEFAULT_TARGETS
  # The patterns written for DecoderLM's raw weights (wq, w_gate, ...) name nothing of Qwen2's Dense kernels.
  with pytest.raises(ValueError, match=r"(?s)match no parameter.*language_model/layers_0/attention/q/kernel"):
    lora_targets(abstract, LoraConfig(targets=(r"language_model/.*/attention/(wq|wk|wv|wo)$",)))
  lora = init_lora(jax.random.key(0), abstract, LoraConfig(rank=3, targets=VLM_TARGETS))  # abstract in, boxed out
  assert set(lora) == {"language_model"}
  q = lora["language_model"]["layers_0"]["attention"]["q"]["kernel"]
  assert isinstance(q["a"], nn.LogicallyPartitioned) and q["a"].names == ("embed", None) and q["a"].value.shape == (16, 3)
  assert q["b"].names == (None, "heads") and q["b"].value.shape == (3, 16)
  assert num_params(lora) == sum(a.value.size + b.value.size for a, b in adapters(lora).values())


def test_zero_b_gives_the_base_model():
  params = lm_params()
  lora = init_lora(jax.random.key(1), params, CONFIG)
  assert set(adapters(lora)) == set(lora_targets(params, CONFIG)) and len(adapters(lora)) == 7
  for a, b in adapters(lora).values():
    assert a.dtype == b.dtype == jnp.float32 and np.std(a) > 0 and not np.any(b)
  merged = merge_lora(params, lora, CONFIG)
  assert jax.tree.structure(merged) == jax.tree.structure(params)
  assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(merged), jax.tree.leaves(params)))
  base = jax.jit(LM.apply)({"params": params}, IDS)[0]
  adapted = jax.jit(lambda p, lo, ids: apply_with_lora(LM.apply, p, lo, CONFIG, ids))(params, lora, IDS)[0]
  np.testing.assert_array_equal(adapted, base)


def test_merged_dense_equals_x_w_plus_scaled_x_a_b():
  dense = Dense(6, (EMBED, MLP))
  params = draw_like({"kernel": jax.ShapeDtypeStruct((8, 6), jnp.float32), "bias": jax.ShapeDtypeStruct((6,), jnp.float32)}, 2)
  config = LoraConfig(rank=3, alpha=5.0, targets=(r"^kernel$",))
  lora = draw_like(init_lora(jax.random.key(0), params, config), 3)
  x = np.random.default_rng(4).normal(size=(5, 8))
  w, bias, a, b = (np.asarray(t, np.float64) for t in (params["kernel"], params["bias"], lora["kernel"]["a"], lora["kernel"]["b"]))
  want = x @ w + bias + config.scale * ((x @ a) @ b)
  got = dense.apply({"params": merge_lora(params, lora, config)}, jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  assert num_params(lora) == 8 * 3 + 3 * 6


def test_merged_attention_kernels_equal_the_unmerged_products():
  """wq [D, H, hd] contracts one dim with the input, wo [H, hd, D] (3-D) two."""
  d, h, hd, r = 8, 2, 4, 3
  shapes = {"wq": jax.ShapeDtypeStruct((d, h, hd), jnp.float32), "wo": jax.ShapeDtypeStruct((h, hd, d), jnp.float32)}
  params = draw_like(shapes, 5)
  config = LoraConfig(rank=r, alpha=6.0, targets=(r"^w[qo]$",))
  lora = init_lora(jax.random.key(0), params, config)
  assert lora["wq"]["a"].shape == (d, r) and lora["wq"]["b"].shape == (r, h, hd)
  assert lora["wo"]["a"].shape == (h, hd, r) and lora["wo"]["b"].shape == (r, d)
  lora = draw_like(lora, 6)
  merged = merge_lora(params, lora, config)
  rng = np.random.default_rng(7)
  x_btd, o_bthk = rng.normal(size=(2, 5, d)), rng.normal(size=(2, 5, h, hd))
  f64 = lambda t: np.asarray(t, np.float64)
  q_want = np.einsum("btd,dhk->bthk", x_btd, f64(params["wq"])) + config.scale * np.einsum(
      "btr,rhk->bthk", np.einsum("btd,dr->btr", x_btd, f64(lora["wq"]["a"])), f64(lora["wq"]["b"]))
  o_want = np.einsum("bthk,hkd->btd", o_bthk, f64(params["wo"])) + config.scale * np.einsum(
      "bthk,hkr->btr", o_bthk, f64(lora["wo"]["a"])) @ f64(lora["wo"]["b"])
  np.testing.assert_allclose(np.einsum("btd,dhk->bthk", x_btd, f64(merged["wq"])), q_want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.einsum("bthk,hkd->btd", o_bthk, f64(merged["wo"])), o_want, rtol=1e-5, atol=1e-5)


def unmerged_logits(params, lora, ids, config):
  """Qwen2LM's logits with each adapted Dense computing x @ W + b + scale * (x @ A) @ B (weights never merged)."""
  found = adapters(lora)

  def add_adapter(next_fun, args, kwargs, context):
    y = next_fun(*args, **kwargs)
    if isinstance(context.module, Dense) and context.method_name == "__call__":
      entry = found.get("/".join(context.module.path) + "/kernel")
      if entry is not None:
        a, b = entry
        y = y + config.scale * jnp.einsum("...r,rn->...n", jnp.einsum("...k,kr->...r", args[0], a), b)
    return y

  with nn.intercept_methods(add_adapter):
    return LM.apply({"params": params}, ids)[0]


def test_whole_model_merged_equals_unmerged_and_survives_bfloat16_storage():
  params = lm_params()
  lora = draw_like(init_lora(jax.random.key(2), params, CONFIG), 8, std=0.3)
  merged_logits = jax.jit(lambda p, lo, ids: apply_with_lora(LM.apply, p, lo, CONFIG, ids))(params, lora, IDS)[0]
  want = jax.jit(functools.partial(unmerged_logits, config=CONFIG))(params, lora, IDS)
  assert float(jnp.max(jnp.abs(want - jax.jit(LM.apply)({"params": params}, IDS)[0]))) > 1e-2  # the adapters matter
  np.testing.assert_allclose(merged_logits, want, rtol=1e-5, atol=1e-5)

  merged = merge_lora(params, lora, CONFIG)
  for path in lora_targets(params, CONFIG):
    leaf = {path_of(p): x for p, x in jax.tree_util.tree_flatten_with_path(merged)[0]}[path]
    stored = np.asarray(leaf.astype(jnp.bfloat16).astype(jnp.float32))  # export as bfloat16, read back
    np.testing.assert_allclose(stored, leaf, rtol=2.0 ** -8, atol=0)  # bfloat16 keeps 8 significant bits
  # A bfloat16 base merges into bfloat16: the float32 sum W + delta rounded once.
  base16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), params)
  merged16 = merge_lora(base16, lora, CONFIG)
  q16, q32 = (m["layers_0"]["attention"]["q"]["kernel"] for m in (merged16, merged))
  assert q16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(q16, np.float32), q32, rtol=2.0 ** -7, atol=2.0 ** -7)


def test_gradients_reach_the_adapters_only_and_the_optimizer_freezes_the_base():
  params = lm_params()
  lora = init_lora(jax.random.key(3), params, CONFIG)
  targets_bt = jnp.roll(IDS, -1, axis=1)

  def loss_fn(state_params, ids_bt):
    logits = apply_with_lora(LM.apply, state_params["base"], state_params["lora"], CONFIG, ids_bt)[0]
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets_bt).mean()

  optimizer = lora_optimizer(optax.adam(1e-2))

  @jax.jit
  def step(state_params, opt_state, ids_bt):
    grads = jax.grad(loss_fn)(state_params, ids_bt)
    updates, opt_state = optimizer.update(grads, opt_state, state_params)
    return grads, optax.apply_updates(state_params, updates), opt_state

  state_params = {"base": params, "lora": lora}
  opt_state = optimizer.init(state_params)
  # Adam's two moments for the adapters, nothing for the base (only step counters besides).
  assert 2 * num_params(lora) <= num_params(opt_state) < 2 * num_params(lora) + 8
  grads, new_params, _ = step(state_params, opt_state, IDS)
  for path, (grad_a, grad_b) in adapters(grads["lora"]).items():
    assert float(jnp.max(jnp.abs(grad_b))) > 0, path
    assert not np.any(grad_a), path  # d loss / d A = (d loss / d delta) B^T = 0 while B = 0
  assert not any(np.any(g) for g in jax.tree.leaves(grads["base"]))  # stop_gradient on the base
  for new, old in zip(jax.tree.leaves(new_params["base"]), jax.tree.leaves(params)):
    assert np.array_equal(new, old)
  new_adapters = adapters(new_params["lora"])
  for path, (old_a, old_b) in adapters(lora).items():
    new_a, new_b = new_adapters[path]
    assert not np.array_equal(new_b, old_b) and np.array_equal(new_a, old_a), path  # A moves from the next step on
  with pytest.raises(ValueError, match='"base": params, "lora": lora'):
    optimizer.init(params)


@pytest.mark.parametrize("which", ["decoder_lm", "vlm"])
def test_sharded_init_splits_adapters_like_their_kernels(which):
  assert len(jax.devices()) == 8
  mesh, rules = make_mesh({"data": 2, "tensor": 4}), logical_rules("tensor")
  if which == "decoder_lm":
    model = DecoderLM(DecoderLMConfig(vocab_size=32, embed_dim=16, num_layers=1, num_heads=4, head_dim=4, mlp_dim=8))
    abstract = jax.eval_shape(model.init, jax.random.key(0), IDS)["params"]
    config = LoraConfig(rank=2, targets=DECODER_TARGETS)
    layer, q_path, down_path = "layer_0", ("attention", "wq"), ("mlp", "w_down")
    q_shard_b, down_shard_a = (2, 1, 4), (2, 2)  # heads 4 / tensor 4; mlp 8 / tensor 4
  else:
    mesh = make_mesh({"data": 4, "tensor": 2})
    abstract = vlm_abstract()  # The whole VLM: the adapters cover its language model only.
    config = LoraConfig(rank=2, targets=VLM_TARGETS)
    layer, q_path, down_path = "layers_0", ("attention", "q", "kernel"), ("mlp", "down", "kernel")
    q_shard_b, down_shard_a = (2, 8), (12, 2)  # heads*hd 16 / tensor 2; mlp 24 / tensor 2
  lora, shardings = init_sharded(functools.partial(init_lora, params=abstract, config=config), jax.random.key(0),
                                 mesh=mesh, rules=rules)
  kernel_specs = logical_to_shardings(abstract, mesh, rules)
  if which == "vlm":
    assert set(lora) == {"language_model"}
    lora, shardings, kernel_specs = (t["language_model"] for t in (lora, shardings, kernel_specs))
  get = lambda tree, path: functools.reduce(lambda node, k: node[k], path, tree[layer])
  q_b, down_a = get(lora, q_path)["b"], get(lora, down_path)["a"]
  assert q_b.sharding == get(shardings, q_path)["b"]
  assert "tensor" in tuple(q_b.sharding.spec) and q_b.addressable_shards[0].data.shape == q_shard_b
  assert tuple(q_b.sharding.spec)[1:] == tuple(get(kernel_specs, q_path).spec)[1:]  # B's output dims split as W's
  assert down_a.sharding.spec[0] == get(kernel_specs, down_path).spec[0] == "tensor"
  assert down_a.addressable_shards[0].data.shape == down_shard_a
  assert not np.any(q_b) and float(jnp.std(down_a)) > 0


def test_errors():
  params = lm_params()
  with pytest.raises(ValueError, match="match no parameter"):
    lora_targets(params, LoraConfig(targets=(r"vision_tower/",)))
  with pytest.raises(ValueError, match="rank"):
    LoraConfig(rank=0)
  with pytest.raises(ValueError, match="not a valid regex"):
    LoraConfig(targets=("(unclosed",))
  with pytest.raises(TypeError, match="tuple of regexes"):
    LoraConfig(targets="attention")
  with pytest.raises(ValueError, match="empty"):
    LoraConfig(targets=())
  lora = init_lora(jax.random.key(0), params, CONFIG)
  # An adapter for a kernel the params lack (a tree of another model, or of a submodule).
  with pytest.raises(ValueError, match="no matching kernel"):
    merge_lora(params, {"language_model": lora}, CONFIG)
  # Same names, other shapes: adapters of a wider model.
  wider = draw_like(jax.eval_shape(Qwen2LM(dataclasses.replace(TEXT, intermediate_size=32)).init,
                                   jax.random.key(0), IDS)["params"], 0)
  with pytest.raises(ValueError, match="mlp/down/kernel.*do not fit"):
    merge_lora(params, init_lora(jax.random.key(0), wider, CONFIG), CONFIG)
  # A config that splits the kernels' dims otherwise than the adapters were made with.
  with pytest.raises(ValueError, match="do not fit"):
    merge_lora(params, lora, LoraConfig(rank=4, targets=QWEN2_TARGETS, input_ndim=((r"/o/kernel$", 2),)))

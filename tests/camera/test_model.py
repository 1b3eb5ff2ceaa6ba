"""GenDoP network: shapes in both conditioning modes, cached decoding equal to full recomputation, the
EOS rule, sharded init on a data x tensor mesh, and the size of the `base` decoder."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from jax.sharding import PartitionSpec

from jaxlab.camera.model import GenDoP, GenDoPConfig, generate, loss
from jaxlab.sharding import init_sharded, logical_rules, make_mesh

PAD, BOS, EOS = 0, 1, 2
VOCAB = 260
CONFIG = GenDoPConfig.preset("tiny")
MODEL = GenDoP(CONFIG)
B = 4  # one batch size everywhere: each decoding program compiles once
STEPS = 21  # decoded tokens in the cache test: crosses the EOS-allowed step 10 and 20


def text_ids(batch: int, seed: int = 0) -> np.ndarray:
  """[B, 77] caption-like ids: [SOT], words, [EOT], then padding."""
  rng = np.random.default_rng(seed)
  ids = np.zeros((batch, 77), np.int32)
  for row in ids:
    n = int(rng.integers(5, 40))
    row[0], row[1:n + 1], row[n + 1] = 2, rng.integers(4, CONFIG.caption_vocab_size, n), 3
  return ids


TEXT = jnp.asarray(text_ids(B))
INPUT_IDS = jnp.asarray(np.concatenate([np.full((B, 1), BOS), np.random.default_rng(1).integers(3, VOCAB, (B, 300))],
                                       axis=1).astype(np.int32))


@jax.jit
def _forward(params, text, input_ids):
  return MODEL.apply({"params": params}, text, None, None, input_ids)


@pytest.fixture(scope="module")
def sharded():
  """Tiny-model params initialised into their shards on a data=2 x tensor=4 mesh (the one init compile)."""
  assert len(jax.devices()) == 8
  mesh = make_mesh({"data": 2, "tensor": 4})
  rules = logical_rules(("data", "tensor"))
  init = lambda key, text, ids: MODEL.init(key, text, None, None, ids)
  # rbg keys compile faster than threefry on CPU.
  variables, _ = init_sharded(init, jax.random.key(0, impl="rbg"), TEXT, INPUT_IDS[:, :4], mesh=mesh, rules=rules)
  return variables["params"]


@pytest.fixture(scope="module")
def params(sharded):
  """The same values on one device."""
  return jax.device_get(sharded)


def test_sharded_init_splits_attention_over_tensor(sharded):
  q = sharded["layers_0"]["attention"]["q"]["kernel"]
  assert q.sharding.spec == PartitionSpec(None, "tensor")
  assert {s.data.shape for s in q.addressable_shards} == {(CONFIG.hidden_size, CONFIG.hidden_size // 4)}
  assert sharded["layers_0"]["fc1"]["kernel"].sharding.spec == PartitionSpec(None, "tensor")
  assert sharded["lm_head"]["kernel"].sharding.spec == PartitionSpec(None, "tensor")
  assert sharded["token_embedding"].sharding.spec == PartitionSpec("tensor", None)


def test_text_shapes_and_loss(params):
  logits = _forward(params, TEXT, INPUT_IDS)
  assert logits.shape == (B, 301, VOCAB) and logits.dtype == jnp.float32
  assert np.all(np.isfinite(np.asarray(logits)))
  targets = jnp.concatenate([INPUT_IDS[:, 1:], jnp.full((B, 1), EOS)], axis=1)
  value = float(loss(logits, targets))
  logp = jax.nn.log_softmax(logits)
  manual = -np.mean(np.take_along_axis(np.asarray(logp), np.asarray(targets)[..., None], axis=-1))
  assert value == pytest.approx(manual, rel=1e-4)
  # PAD targets are left out; uniform logits cost log(V) per counted target.
  padded = targets.at[:, 100:].set(PAD)
  assert float(loss(jnp.zeros_like(logits), padded)) == pytest.approx(math.log(VOCAB), rel=1e-5)


def test_rgbd_text_shapes_and_images_matter():
  config = GenDoPConfig.preset("tiny", conditioning="rgbd_text")
  model = GenDoP(config)
  assert config.prefix_length == 77 + 2 * 5
  rng = np.random.default_rng(2)
  rgb = jnp.asarray(rng.integers(0, 256, (B, 40, 36, 3)), jnp.uint8)  # resized to the towers' 28 px
  depth = jnp.asarray(rng.uniform(1, 5, (B, 40, 36)), jnp.float32)
  ids = INPUT_IDS[:, :11]
  # Shapes from tracing alone; values drawn here (a random init would cost a long compile).
  shapes = nn.unbox(jax.eval_shape(model.init, jax.random.key(0), TEXT, rgb, depth, ids))["params"]
  assert {"rgb_tower", "depth_tower", "rgb_proj", "depth_proj"} <= set(shapes)
  # Two separate towers of the same layout.
  assert jax.tree.structure(shapes["rgb_tower"]) == jax.tree.structure(shapes["depth_tower"])
  params = jax.tree.map(lambda x: jnp.asarray(rng.normal(0, 0.1, x.shape), x.dtype), shapes)

  @jax.jit
  def run(rgb, depth):
    variables = {"params": params}
    return (model.apply(variables, TEXT, rgb, depth, ids),
            model.apply(variables, TEXT, rgb, depth, method=GenDoP.encode_prefix))

  logits, prefix = run(rgb, depth)
  assert logits.shape == (B, 11, VOCAB) and np.all(np.isfinite(np.asarray(logits)))
  assert prefix.shape == (B, 77 + 5 + 5, CONFIG.hidden_size)
  # Prefix order [text, rgb, depth]: each image moves its own 5 tokens only, and the logits.
  # Each tower gives CLS then 4 patch tokens; the patches of a changed image must move.
  for changed, start in ((run(rgb[::-1], depth), 77), (run(rgb, depth[:, ::-1]), 82)):
    delta = np.abs(np.asarray(changed[1] - prefix)).max(axis=(0, 2))
    assert np.all(delta[start + 1:start + 5] > 1e-3)
    assert np.all(np.delete(delta, np.arange(start, start + 5)) < 1e-5)
    assert np.abs(np.asarray(changed[0] - logits)).max() > 1e-6
  with pytest.raises(ValueError, match="needs both rgb"):
    model.apply({"params": params}, TEXT, rgb, None, ids)


def _reference_greedy(params, steps):
  """Greedy decoding by recomputing the whole sequence at every step, the EOS rule written out again."""
  ids = np.full((B, 301), PAD, np.int32)
  ids[:, 0] = BOS
  out = np.full((B, 300), PAD, np.int32)
  done = np.zeros(B, bool)
  all_logits = []
  for i in range(steps):
    logits = np.array(_forward(params, TEXT, jnp.asarray(ids))[:, i])  # causal: later slots do not matter
    all_logits.append(logits.copy())
    logits[:, [PAD, BOS]] = -np.inf
    if not (i >= 10 and i % 10 == 0):
      logits[:, EOS] = -np.inf
    token = np.where(done, PAD, logits.argmax(-1))
    done |= token == EOS
    out[:, i] = ids[:, i + 1] = token
  return out, np.stack(all_logits, axis=1)


def test_cached_greedy_equals_full_recomputation(params):
  reference, reference_logits = _reference_greedy(params, STEPS)
  tokens = np.asarray(generate(MODEL, params, TEXT, None, None, None, greedy=True, max_new_tokens=STEPS))
  assert tokens.shape == (B, 300) and tokens.dtype == np.int32
  np.testing.assert_array_equal(tokens, reference)
  assert np.all(tokens[:, STEPS:] == PAD)

  # The cache's logits at every step match the full forward's at the same position.
  @jax.jit
  def cached_logits(params, tokens_bn):
    variables = {"params": params}
    first, cache = MODEL.apply(variables, TEXT, None, None, cache_length=CONFIG.prefix_length + STEPS,
                               method=GenDoP.prefill)

    def step(cache, token_b):
      logits, cache = MODEL.apply(variables, token_b, cache, method=GenDoP.decode_step)
      return cache, logits

    _, rest = jax.lax.scan(step, cache, tokens_bn[:, :STEPS - 1].T)
    return jnp.concatenate([first[:, None], jnp.swapaxes(rest, 0, 1)], axis=1)

  np.testing.assert_allclose(np.asarray(cached_logits(params, jnp.asarray(tokens))), reference_logits,
                             atol=1e-4, rtol=1e-4)


def _constant_head(params, pad_bos_logit, eos_logit):
  """Params whose last hidden state is all ones, so each token's logit is its lm_head column sum."""
  d = CONFIG.hidden_size
  p = jax.tree.map(lambda x: x, params)
  last = dict(p[f"layers_{CONFIG.num_layers - 1}"])
  last["mlp_norm"] = {"scale": jnp.zeros((d,)), "bias": jnp.ones((d,))}
  p[f"layers_{CONFIG.num_layers - 1}"] = last
  kernel = np.random.default_rng(3).normal(0, 0.02, (d, VOCAB)).astype(np.float32)
  kernel[:, [PAD, BOS]] = pad_bos_logit / d
  kernel[:, EOS] = eos_logit / d
  p["lm_head"] = {"kernel": jnp.asarray(kernel)}
  return p


def test_eos_only_after_whole_poses(params):
  # EOS far above every pose token (PAD and BOS higher still): it comes exactly at the first allowed step.
  tokens = np.asarray(generate(MODEL, _constant_head(params, 100.0, 50.0), TEXT, None, None, None, greedy=True,
                               max_new_tokens=STEPS))
  assert np.all((tokens[:, :10] >= 3) & (tokens[:, :10] < VOCAB))
  assert np.all(tokens[:, 10] == EOS) and np.all(tokens[:, 11:] == PAD)
  # Top-10 sampling with EOS the likeliest token: rows end only after 10 or 20 tokens, never before.
  tokens = np.asarray(generate(MODEL, _constant_head(params, 100.0, 3.0), TEXT, None, None, jax.random.key(5),
                               max_new_tokens=STEPS))
  ends = []
  for row in tokens:
    e = int(np.argmax(row == EOS)) if EOS in row else STEPS
    ends.append(e)
    assert np.all((row[:e] >= 3) & (row[:e] < VOCAB)) and np.all(row[e + 1:] == PAD)
  assert set(ends) <= {10, 20, STEPS} and {10, 20} & set(ends)


def test_argument_errors(params):
  with pytest.raises(ValueError, match="max_new_tokens"):
    generate(MODEL, params, TEXT, None, None, None, greedy=True, max_new_tokens=302)
  with pytest.raises(ValueError, match="PRNG key"):
    generate(MODEL, params, TEXT, None, None, None)
  with pytest.raises(ValueError, match="takes no rgb"):
    generate(MODEL, params, TEXT, jnp.zeros((B, 28, 28, 3)), None, None, greedy=True)
  with pytest.raises(ValueError, match="conditioning"):
    GenDoPConfig.preset("tiny", conditioning="image")
  with pytest.raises(ValueError, match="input_ids"):
    MODEL.apply({"params": params}, TEXT, None, None, jnp.ones((B, 302), jnp.int32))


def test_base_decoder_size():
  config = GenDoPConfig.preset("base")
  model = GenDoP(config)
  shapes = jax.eval_shape(lambda key: model.init(key, TEXT[:1], None, None, INPUT_IDS[:1]), jax.random.key(0))
  counts = {name: sum(math.prod(x.shape) for x in jax.tree.leaves(sub)) for name, sub in shapes["params"].items()}
  decoder = sum(n for name, n in counts.items()
                if name.startswith("layers_") or name in ("token_embedding", "position_embedding", "lm_head"))
  # OPT block: q/k/v/o with biases, fc1/fc2 with biases, two LayerNorms; no bias on the head.
  d, f, layers, positions = 1024, 4096, 12, 77 + 1 + 300
  block = 4 * (d * d + d) + (d * f + f) + (f * d + d) + 2 * 2 * d
  expected = layers * block + VOCAB * d + positions * d + d * VOCAB
  assert decoder == expected
  assert 145e6 < decoder < 160e6
  assert sum(1 for name in counts if name.startswith("layers_")) == 12

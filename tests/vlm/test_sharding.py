"""Sharding of `InternVLModel`: sharded init on an fsdp x tensor mesh leaves no large parameter
replicated, and the model's sharded forward equals the single-device one."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab import _compat
from jaxlab.models.qwen2 import Qwen2Config
from jaxlab.sharding import assert_params_sharded, axis_rules, batch_sharding, init_sharded, logical_rules, make_mesh
from jaxlab.vlm.config import InternVLConfig
from jaxlab.vlm.model import InternVLModel
from jaxlab.vlm.projector import ProjectorConfig
from jaxlab.vlm.vision import InternVisionConfig

# About 15 s on an idle 2-core machine (one sharded init and two forward compiles).
pytestmark = pytest.mark.slow

# Widths divide fsdp=4 (embed) and tensor=2 (heads, kv heads, mlp, vocab). One vision config holds
# every kind of vision parameter: q/k/v biases (InternViT-300M) and qk-norm scales (InternViT-6B);
# RMSNorm's one scale is a subset of LayerNorm's scale and bias. Layers are identical, so one
# vision layer and one decoder layer cover them; compiling each random init is slow on CPU, which keeps this small.
VISION = InternVisionConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                            attention_bias=True, use_qk_norm=True, image_size=(56, 56))
LANGUAGE = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=4, num_key_value_heads=2)
PROJECTOR = ProjectorConfig(vision_hidden_size=32, text_hidden_size=32)
# Every matrix above has at least this many elements; every vector (bias, norm, layer scale) fewer.
MIN_SIZE = 256
BATCH = 4  # Split over fsdp.
TEXT = 4  # Text tokens after each image's 4 tokens (a 56 px tile: 4 x 4 patches, shuffled to 2 x 2).


# rbg keys compile several times faster than threefry on CPU; the values need not match an unsharded
# init, since the single-device forward below reads the very parameters the sharded init made.
KEY_IMPL = "rbg"


IMAGE_TOKEN = 63
CONFIG = InternVLConfig(vision=VISION, projector=PROJECTOR, text=LANGUAGE, image_token_id=IMAGE_TOKEN,
                        image_seq_length=4)


def prompts(rng, batch):
  """[B, 4 + T] ids: each row's 4 image tokens (one tile), then T text tokens."""
  text = rng.integers(0, IMAGE_TOKEN, (batch, TEXT))
  return np.concatenate([np.full((batch, 4), IMAGE_TOKEN), text], axis=1).astype(np.int32)


def forward(params, input_ids_bt, pixels_nhwc):
  logits_btv, _ = InternVLModel(CONFIG).apply({"params": params}, input_ids_bt, pixels_nhwc)
  return logits_btv


def path_of(path) -> str:
  return jax.tree_util.keystr(path, simple=True, separator="/")


@pytest.fixture(scope="module")
def sharded():
  """(InternVLModel params initialised into their shards, mesh, rules)."""
  assert len(jax.devices()) == 8
  mesh = make_mesh({"fsdp": 4, "tensor": 2})
  rules = logical_rules(("fsdp", "tensor"))
  key = jax.random.key(0, impl=KEY_IMPL)
  ids = jnp.asarray(prompts(np.random.default_rng(1), 1))
  variables, _ = init_sharded(InternVLModel(CONFIG).init, key, ids, jnp.zeros((1, 56, 56, 3), jnp.float32),
                              mesh=mesh, rules=rules)
  return variables["params"], mesh, rules


def test_no_large_parameter_is_replicated(sharded):
  params, _, _ = sharded
  assert_params_sharded(params, min_size=MIN_SIZE)
  # The size threshold skips only vectors: every weight matrix and table is at least MIN_SIZE.
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  weights = {path_of(p): x for p, x in flat if path_of(p).endswith(("kernel", "embedding", "position_embeddings"))}
  assert len(weights) == 8 + 2 + 9  # vision: patch, positions, q/k/v/o, fc1/fc2; projector: 2; LM: 1 + 7 + 1.
  assert all(math.prod(x.shape) >= MIN_SIZE for x in weights.values()), {k: x.shape for k, x in weights.items()}
  # Both mesh axes are used: fsdp on embed dims, tensor on heads / mlp / vocab.
  assert set(params) == {"vision_tower", "projector", "language_model"}
  layer = params["vision_tower"]["layer_0"]
  assert tuple(layer["attention"]["q_kernel"].sharding.spec) == ("fsdp", "tensor", None)
  assert tuple(layer["attention"]["o_kernel"].sharding.spec) == ("tensor", None, "fsdp")
  assert tuple(layer["fc2"]["kernel"].sharding.spec) == ("tensor", "fsdp")
  assert tuple(params["vision_tower"]["embeddings"]["patch_kernel"].sharding.spec) == (None, None, None, "fsdp")
  assert tuple(params["projector"]["linear_1"]["kernel"].sharding.spec) == ("fsdp", "tensor")
  assert tuple(params["language_model"]["embed"]["embedding"].sharding.spec) == ("tensor", "fsdp")
  assert tuple(params["language_model"]["lm_head"]["kernel"].sharding.spec) == ("fsdp", "tensor")


def test_sharded_forward_matches_single_device(sharded):
  params, mesh, rules = sharded
  rng = np.random.default_rng(0)
  pixels = rng.standard_normal((BATCH, 56, 56, 3)).astype(np.float32)
  tokens = prompts(rng, BATCH)
  single_device = jax.devices()[0]
  host_params = jax.device_put(jax.device_get(params), single_device)
  expected = jax.jit(forward)(host_params, jax.device_put(tokens, single_device), jax.device_put(pixels, single_device))
  assert len(expected.sharding.device_set) == 1

  with axis_rules(rules), _compat.set_mesh(mesh):
    pixels_s = jax.device_put(pixels, batch_sharding(mesh, rules, 4))
    tokens_s = jax.device_put(tokens, batch_sharding(mesh, rules, 2))
    logits = jax.jit(forward)(params, tokens_s, pixels_s)
  assert logits.shape == (BATCH, 4 + TEXT, LANGUAGE.vocab_size)
  assert len(logits.sharding.device_set) == 8 and not logits.sharding.is_fully_replicated
  np.testing.assert_allclose(np.asarray(logits), np.asarray(expected), rtol=1e-5, atol=1e-5)


def test_context_parallel_forward_and_gradients_match_single_device(sharded):
  """With a "context" mesh axis the language model attends by ring attention (the sequence split
  over 4 devices); logits and parameter gradients equal one device's."""
  params, _, _ = sharded
  host_params = jax.device_get(params)
  rng = np.random.default_rng(2)
  pixels = rng.standard_normal((2, 56, 56, 3)).astype(np.float32)
  tokens = prompts(rng, 2)

  def loss(params, tokens, pixels):
    logits_btv, _ = InternVLModel(CONFIG).apply({"params": params}, tokens, pixels)
    return jnp.mean(jax.nn.log_softmax(logits_btv)[..., 0]), logits_btv

  step = jax.jit(jax.value_and_grad(loss, has_aux=True))
  (_, expected), expected_grads = step(host_params, tokens, pixels)

  mesh = make_mesh({"data": 2, "context": 4})
  rules = logical_rules(("data", "context"))
  with axis_rules(rules), _compat.set_mesh(mesh):
    lowered = step.lower(host_params, tokens, pixels).as_text()
    (_, logits), grads = step(host_params, tokens, pixels)
  assert "collective_permute" in lowered  # The ring ran: key/value chunks were passed around.
  np.testing.assert_allclose(np.asarray(logits), np.asarray(expected), rtol=1e-5, atol=1e-5)
  for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(expected_grads)):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-6)

"""DecoderLM: causality, shapes of the full-size config without allocating, sharded layout."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.data.sorting import SortingSource
from jaxlab.models import DecoderLM, DecoderLMConfig
from jaxlab.sharding import axis_rules, init_sharded, logical_rules, make_mesh

TINY = DecoderLMConfig(vocab_size=11, embed_dim=32, num_layers=2, num_heads=2, head_dim=16, mlp_dim=64)


def test_logits_never_depend_on_later_tokens():
  model = DecoderLM(TINY)
  ids = jnp.asarray(np.random.default_rng(0).integers(0, 11, size=(2, 9)), jnp.int32)
  params = model.init(jax.random.key(0), ids)
  changed = ids.at[:, 6:].set((ids[:, 6:] + 1) % 11)
  a, b = model.apply(params, ids), model.apply(params, changed)
  assert a.shape == (2, 9, 11) and a.dtype == jnp.float32
  np.testing.assert_allclose(a[:, :6], b[:, :6], rtol=1e-5, atol=1e-6)
  assert not np.allclose(a[:, 6:], b[:, 6:])


def test_default_lm_tiny_config_shapes_without_allocating():
  spec = importlib.util.spec_from_file_location("lm_tiny", pathlib.Path(__file__).parents[2] / "configs" / "lm_tiny.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config("default")
  source = SortingSource(c.data.num_train_examples, c.data.length, c.data.num_symbols)
  model = DecoderLM(DecoderLMConfig(vocab_size=source.vocab_size, **c.model))
  ids = jax.ShapeDtypeStruct((c.data.global_batch_size, source.seq_len), jnp.int32)
  variables = jax.eval_shape(model.init, jax.random.key(0), ids)
  logits = jax.eval_shape(model.apply, variables, ids)
  assert logits.shape == (c.data.global_batch_size, source.seq_len, source.vocab_size)
  layer = variables["params"]["layer_0"]["attention"]["wq"]
  assert layer.value.shape == (c.model.embed_dim, c.model.num_heads, c.model.head_dim)
  assert layer.names == ("embed", "heads", "head_dim")


def test_fsdp_shards_every_matrix_on_eight_devices():
  mesh = make_mesh({"data": 2, "fsdp": 4})
  rules = logical_rules(("data", "fsdp"))
  model = DecoderLM(TINY)
  with jax.set_mesh(mesh), axis_rules(rules):
    variables, _ = init_sharded(model.init, jax.random.key(0), jnp.zeros((1, 8), jnp.int32), mesh=mesh, rules=rules)
  params = variables["params"]
  assert params["layer_0"]["mlp"]["w_gate"].sharding.spec == jax.sharding.PartitionSpec("fsdp", None)
  assert params["layer_1"]["mlp"]["w_down"].sharding.spec == jax.sharding.PartitionSpec(None, "fsdp")
  assert params["embed"]["embedding"].sharding.spec == jax.sharding.PartitionSpec(None, "fsdp")
  shard = params["layer_0"]["attention"]["wq"].addressable_shards[0].data
  assert shard.shape == (32 // 4, 2, 16)

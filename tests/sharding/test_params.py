"""Tests for init_sharded: parameters are created in their shards, with unchanged values."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab import sharding
from jaxlab.sharding import BATCH, EMBED, MLP, SEQ, VOCAB
from jaxlab.sharding import params as params_lib

VOCAB_SIZE, EMBED_SIZE, MLP_SIZE = 32, 16, 64


class TinyLm(nn.Module):
  """Embedding, MLP block and an un-annotated scale: every kind of parameter leaf."""

  @nn.compact
  def __call__(self, tokens_bs):
    table_ve = self.param(
        "embedding", sharding.param_with_axes(nn.initializers.normal(1.0), (VOCAB, EMBED)),
        (VOCAB_SIZE, EMBED_SIZE))
    x_bse = sharding.constrain(table_ve[tokens_bs], (BATCH, SEQ, EMBED))
    h_bsm = nn.Dense(
        MLP_SIZE,
        kernel_init=sharding.param_with_axes(nn.initializers.lecun_normal(), (EMBED, MLP)),
        bias_init=sharding.param_with_axes(nn.initializers.normal(1.0), (MLP,)),
        name="up")(x_bse)
    h_bsm = sharding.constrain(nn.gelu(h_bsm), (BATCH, SEQ, MLP))
    y_bse = nn.Dense(
        EMBED_SIZE, use_bias=False,
        kernel_init=sharding.param_with_axes(nn.initializers.lecun_normal(), (MLP, EMBED)),
        name="down")(h_bsm)
    scale_e = self.param("scale", nn.initializers.ones, (EMBED_SIZE,))
    return y_bse * scale_e


def _tokens():
  return jnp.arange(8 * 4).reshape(8, 4) % VOCAB_SIZE


# Expected layouts, derived from the presets: fsdp splits embed, tensor splits mlp/vocab.
CASES = {
    "data2_fsdp4": (
        {"data": 2, "fsdp": 4}, ("data", "fsdp"),
        {"embedding": (None, "fsdp"), "up/kernel": ("fsdp", None), "up/bias": (None,),
         "down/kernel": (None, "fsdp"), "scale": (None,)},
    ),
    "data2_fsdp2_tensor2": (
        {"data": 2, "fsdp": 2, "tensor": 2}, ("data", "fsdp", "tensor"),
        {"embedding": ("tensor", "fsdp"), "up/kernel": ("fsdp", "tensor"), "up/bias": ("tensor",),
         "down/kernel": ("tensor", "fsdp"), "scale": (None,)},
    ),
}


def _flat(tree):
  return {
      jax.tree_util.keystr(path, simple=True, separator="/").removeprefix("params/"): leaf
      for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
  }


@pytest.mark.parametrize("case", sorted(CASES))
def test_init_sharded_places_each_parameter_in_its_shards(case):
  mesh_sizes, presets, expected_specs = CASES[case]
  mesh = sharding.make_mesh(mesh_sizes)
  params, shardings = sharding.init_sharded(
      TinyLm().init, jax.random.key(0), _tokens(), mesh=mesh, rules=sharding.logical_rules(presets))
  flat_params, flat_shardings = _flat(params), _flat(shardings)
  assert set(flat_params) == set(expected_specs)
  for name, expected in expected_specs.items():
    array = flat_params[name]
    assert array.sharding.mesh == mesh
    spec = tuple(array.sharding.spec)
    assert spec + (None,) * (array.ndim - len(spec)) == expected
    assert array.sharding.is_equivalent_to(flat_shardings[name], array.ndim)
    # Each device holds exactly its slice: dimension size / product of its mesh axes.
    shard_shape = tuple(
        dim // math.prod(mesh.shape[a] for a in ((axes,) if isinstance(axes, str) else axes or ()))
        for dim, axes in zip(array.shape, expected))
    assert len(array.addressable_shards) == mesh.devices.size
    assert {s.data.shape for s in array.addressable_shards} == {shard_shape}


def test_init_sharded_values_equal_plain_init():
  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  params, _ = sharding.init_sharded(
      TinyLm().init, jax.random.key(3), _tokens(), mesh=mesh,
      rules=sharding.logical_rules(("data", "fsdp", "tensor")))
  plain = nn.unbox(jax.jit(TinyLm().init)(jax.random.key(3), _tokens()))
  for name, value in _flat(plain).items():
    np.testing.assert_array_equal(np.asarray(_flat(params)[name]), np.asarray(value), err_msg=name)


def test_shardings_drive_a_sharded_apply_that_matches_unsharded():
  mesh = sharding.make_mesh({"data": 2, "fsdp": 4})
  table = sharding.logical_rules(("data", "fsdp"))
  model = TinyLm()
  params, shardings = sharding.init_sharded(
      model.init, jax.random.key(1), _tokens(), mesh=mesh, rules=table)
  tokens = jax.device_put(_tokens(), sharding.batch_sharding(mesh, table, ndim=2))
  with sharding.axis_rules(table), jax.set_mesh(mesh):
    apply = jax.jit(model.apply, in_shardings=(shardings, tokens.sharding))
    y = apply(params, tokens)
  assert tuple(y.sharding.spec)[:1] == (("data", "fsdp"),)
  expected = jax.jit(model.apply)(jax.device_get(params), np.asarray(_tokens()))
  np.testing.assert_allclose(np.asarray(y), np.asarray(expected), rtol=1e-5, atol=1e-5)


class OneBigKernel(nn.Module):

  @nn.compact
  def __call__(self, x):
    return nn.Dense(
        1024, use_bias=False,
        kernel_init=sharding.param_with_axes(nn.initializers.lecun_normal(), (EMBED, MLP)))(x)


def test_compiled_init_never_holds_a_whole_parameter_on_one_device():
  mesh = sharding.make_mesh({"fsdp": 8})
  table = sharding.logical_rules("fsdp")
  args = (jax.random.key(0), jnp.ones((1, 1024)))
  abstract = jax.eval_shape(OneBigKernel().init, *args)
  whole_bytes = 1024 * 1024 * 4

  def per_device_peak_bytes(shardings):
    compiled = params_lib._jit_init(OneBigKernel().init, shardings).lower(*args).compile()
    stats = compiled.memory_analysis()
    return stats.temp_size_in_bytes + stats.output_size_in_bytes

  sharded = sharding.logical_to_shardings(abstract, mesh, table)
  replicated = sharding.logical_to_shardings(abstract, mesh, sharding.logical_rules(()))
  assert per_device_peak_bytes(replicated) >= whole_bytes  # the check can see replication
  assert per_device_peak_bytes(sharded) < whole_bytes


class ScannedBlocks(nn.Module):
  """Four Dense layers stacked by nn.scan, which prepends a `layers` axis to each box."""

  @nn.compact
  def __call__(self, x_be):
    def block(module, carry_be, _):
      kernel_init = sharding.param_with_axes(nn.initializers.lecun_normal(), (EMBED, MLP))
      return nn.Dense(EMBED_SIZE, use_bias=False, kernel_init=kernel_init)(carry_be), None

    scanned = nn.scan(
        block, variable_axes={"params": 0}, split_rngs={"params": True}, length=4,
        metadata_params={nn.PARTITION_NAME: sharding.LAYERS})
    return scanned(self, x_be, None)[0]


def test_scan_stacked_parameters_keep_their_logical_layout():
  mesh = sharding.make_mesh({"fsdp": 4, "tensor": 2})
  params, _ = sharding.init_sharded(
      ScannedBlocks().init, jax.random.key(0), jnp.ones((2, EMBED_SIZE)), mesh=mesh,
      rules=sharding.logical_rules(("fsdp", "tensor")))
  kernel, = jax.tree.leaves(params)
  assert kernel.shape == (4, EMBED_SIZE, EMBED_SIZE)
  assert tuple(kernel.sharding.spec) == (None, "fsdp", "tensor")
  assert {s.data.shape for s in kernel.addressable_shards} == {(4, EMBED_SIZE // 4, EMBED_SIZE // 2)}

"""Tests for logical annotation: param boxes, activation constraints, sharding resolution."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding

from jaxlab import sharding
from jaxlab.sharding import BATCH, EMBED, MLP, SEQ


def padded(spec, ndim):
  return tuple(spec) + (None,) * (ndim - len(spec))


class TinyMlp(nn.Module):
  """Dense with logical kernel/bias axes plus one un-annotated parameter."""

  @nn.compact
  def __call__(self, x_be):
    h_bm = nn.Dense(
        16,
        kernel_init=sharding.param_with_axes(nn.initializers.lecun_normal(), (EMBED, MLP)),
        bias_init=sharding.param_with_axes(nn.initializers.zeros, (MLP,)),
    )(x_be)
    scale_m = self.param("scale", nn.initializers.ones, (16,))
    return h_bm * scale_m


def test_param_with_axes_boxes_values_with_logical_names():
  abstract = jax.eval_shape(TinyMlp().init, jax.random.key(0), jnp.ones((2, 8)))
  kernel = abstract["params"]["Dense_0"]["kernel"]
  assert isinstance(kernel, nn.LogicallyPartitioned)
  assert kernel.names == (EMBED, MLP)
  assert kernel.value.shape == (8, 16)
  assert abstract["params"]["Dense_0"]["bias"].names == (MLP,)
  assert not isinstance(abstract["params"]["scale"], nn.Partitioned)


def test_param_with_axes_rejects_rank_mismatch_at_init():
  init = sharding.param_with_axes(nn.initializers.lecun_normal(), (EMBED,))
  with pytest.raises(ValueError, match=r"shape \(8, 16\) \(2 dims\)"):
    init(jax.random.key(0), (8, 16))


def test_param_with_axes_rejects_non_string_names():
  with pytest.raises(ValueError, match="logical axis name"):
    sharding.param_with_axes(nn.initializers.zeros, (EMBED, 3))


def _has_constraint(x):
  # A new function per call: jax's trace cache does not key on Linen's rules context.
  fn = lambda v: sharding.constrain(v, (BATCH, SEQ, EMBED))
  return "sharding_constraint" in str(jax.make_jaxpr(fn)(x))


def test_constrain_is_active_only_with_both_rules_and_mesh():
  mesh = sharding.make_mesh({"data": 2, "fsdp": 4})
  table = sharding.logical_rules(("data", "fsdp"))
  x = jnp.ones((8, 4, 16))
  assert not _has_constraint(x)
  with sharding.axis_rules(table):
    assert not _has_constraint(x)
  with jax.set_mesh(mesh):
    assert not _has_constraint(x)
  with sharding.axis_rules(table), jax.set_mesh(mesh):
    assert _has_constraint(x)


def test_constrain_returns_concrete_arrays_unchanged_outside_a_trace():
  mesh = sharding.make_mesh({"data": 2, "fsdp": 4})
  x = jnp.arange(32.0).reshape(8, 4)
  with sharding.axis_rules(sharding.logical_rules("data")), jax.set_mesh(mesh):
    assert sharding.constrain(x, (BATCH, None)) is x


def test_constrain_checks_rank_even_when_inactive():
  with pytest.raises(ValueError, match=r"shape \(8, 4\)"):
    sharding.constrain(jnp.ones((8, 4)), (BATCH,))


@pytest.mark.parametrize(
    "mesh_sizes, presets, names, expected",
    [
        ({"data": 2, "fsdp": 4}, ("data", "fsdp"), (BATCH, SEQ, EMBED),
         (("data", "fsdp"), None, None)),
        ({"data": 2, "fsdp": 2, "tensor": 2}, ("data", "fsdp", "tensor"), (BATCH, SEQ, MLP),
         (("data", "fsdp"), None, "tensor")),
        ({"fsdp": 4, "tensor": 2}, ("fsdp", "tensor"), (SEQ, EMBED, MLP), (None, "fsdp", "tensor")),
    ],
)
def test_constrain_inside_jit_sets_output_sharding(mesh_sizes, presets, names, expected):
  mesh = sharding.make_mesh(mesh_sizes)
  x = jnp.arange(8 * 4 * 16, dtype=jnp.float32).reshape(8, 4, 16)
  with sharding.axis_rules(sharding.logical_rules(presets)), jax.set_mesh(mesh):
    y = jax.jit(lambda v: sharding.constrain(v * 2.0, names))(x)
  assert padded(y.sharding.spec, 3) == expected
  shard_shape = y.sharding.shard_shape(y.shape)
  assert all(s.data.shape == shard_shape for s in y.addressable_shards)
  assert shard_shape != y.shape
  np.testing.assert_array_equal(np.asarray(y), 2.0 * np.asarray(x))


def test_logical_to_shardings_maps_boxes_and_replicates_plain_leaves():
  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  table = sharding.logical_rules(("data", "fsdp", "tensor"))
  abstract = jax.eval_shape(TinyMlp().init, jax.random.key(0), jnp.ones((2, 8)))
  shardings = sharding.logical_to_shardings(abstract, mesh, table)
  assert jax.tree.structure(shardings) == jax.tree.structure(nn.unbox(abstract))
  dense = shardings["params"]["Dense_0"]
  assert all(isinstance(s, NamedSharding) and s.mesh == mesh for s in jax.tree.leaves(shardings))
  assert padded(dense["kernel"].spec, 2) == ("fsdp", "tensor")
  assert padded(dense["bias"].spec, 1) == ("tensor",)
  assert shardings["params"]["scale"].is_fully_replicated


def test_logical_to_shardings_names_the_path_of_a_rank_mismatch():
  mesh = sharding.make_mesh({"fsdp": 8})
  w = nn.LogicallyPartitioned(jax.ShapeDtypeStruct((4, 8), jnp.float32), (EMBED,))
  bad = {"layer": {"w": w}}
  with pytest.raises(ValueError, match="layer/w"):
    sharding.logical_to_shardings(bad, mesh, sharding.logical_rules("fsdp"))


def test_logical_to_shardings_rejects_mesh_axis_boxes():
  mesh = sharding.make_mesh({"fsdp": 8})
  boxed = {"w": nn.Partitioned(jax.ShapeDtypeStruct((8, 8), jnp.float32), ("fsdp", None))}
  with pytest.raises(ValueError, match="param_with_axes"):
    sharding.logical_to_shardings(boxed, mesh, sharding.logical_rules("fsdp"))


def test_batch_sharding_splits_dimension_zero_only():
  mesh = sharding.make_mesh({"data": 2, "fsdp": 4})
  s = sharding.batch_sharding(mesh, sharding.logical_rules(("data", "fsdp")), ndim=3)
  assert padded(s.spec, 3) == (("data", "fsdp"), None, None)
  x = jax.device_put(np.zeros((16, 3, 5), np.float32), s)
  assert {shard.data.shape for shard in x.addressable_shards} == {(2, 3, 5)}


def test_batch_sharding_without_a_batch_rule_replicates():
  mesh = sharding.make_mesh({"tensor": 8})
  s = sharding.batch_sharding(mesh, sharding.logical_rules("tensor"), ndim=2)
  assert s.is_fully_replicated


def test_batch_sharding_needs_a_batch_dimension():
  mesh = sharding.make_mesh({"data": 8})
  with pytest.raises(ValueError, match="ndim >= 1"):
    sharding.batch_sharding(mesh, sharding.logical_rules("data"), ndim=0)

"""Tests for assert_params_sharded and sharding_summary."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxlab import sharding
from jaxlab.sharding import EMBED, MLP


@pytest.fixture(scope="module")
def mesh():
  return sharding.make_mesh({"data": 2, "fsdp": 4})


def put(mesh, shape, spec):
  return jax.device_put(np.zeros(shape, np.float32), NamedSharding(mesh, spec))


def test_flags_a_large_replicated_parameter_and_only_it(mesh):
  params = {
      "encoder": {"kernel": put(mesh, (256, 128), P()), "bias": put(mesh, (128,), P())},
      "decoder": {"kernel": put(mesh, (256, 128), P("fsdp", None))},
  }
  with pytest.raises(AssertionError) as info:
    sharding.assert_params_sharded(params)
  message = str(info.value)
  assert "encoder/kernel" in message and "(256, 128)" in message
  assert "decoder" not in message and "bias" not in message
  assert message.startswith("1 parameter(s)")


def test_names_every_offender(mesh):
  params = {"a": put(mesh, (128, 128), P()), "b": {"c": put(mesh, (64, 256), P())}}
  with pytest.raises(AssertionError) as info:
    sharding.assert_params_sharded(params)
  assert "a:" in str(info.value) and "b/c" in str(info.value)


def test_passes_when_large_parameters_are_sharded(mesh):
  params = {
      "w": put(mesh, (256, 128), P(None, "fsdp")),
      "v": put(mesh, (1024, 64), P(("data", "fsdp"))),
  }
  sharding.assert_params_sharded(params)


def test_min_size_threshold_is_inclusive(mesh):
  sharding.assert_params_sharded({"w": put(mesh, (63, 16), P())}, min_size=64 * 16)
  with pytest.raises(AssertionError, match="w"):
    sharding.assert_params_sharded({"w": put(mesh, (64, 16), P())}, min_size=64 * 16)


def test_allow_regexes_exempt_matching_paths(mesh):
  params = {"embed": {"table": put(mesh, (256, 128), P())}, "head": put(mesh, (256, 128), P())}
  with pytest.raises(AssertionError) as info:
    sharding.assert_params_sharded(params, allow=[r"^embed/"])
  assert "head" in str(info.value) and "embed/table" not in str(info.value)
  sharding.assert_params_sharded(params, allow=[r"^embed/", r"head$"])
  sharding.assert_params_sharded(params, allow=r"table|head")


def test_single_device_parameters_are_not_replication():
  one_device = sharding.make_mesh({"data": 1}, devices=jax.devices()[:1])
  sharding.assert_params_sharded({"w": put(one_device, (256, 128), P())})
  sharding.assert_params_sharded({"w": jnp.zeros((256, 128))})


class Mlp(nn.Module):

  @nn.compact
  def __call__(self, x):
    kernel_init = sharding.param_with_axes(nn.initializers.lecun_normal(), (EMBED, MLP))
    return nn.Dense(256, kernel_init=kernel_init, use_bias=False)(x)


def test_catches_data_parallel_only_rules_and_passes_fsdp(mesh):
  args = (jax.random.key(0), jnp.ones((2, 128)))
  replicated, _ = sharding.init_sharded(
      Mlp().init, *args, mesh=mesh, rules=sharding.logical_rules("data"))
  with pytest.raises(AssertionError, match="params/Dense_0/kernel"):
    sharding.assert_params_sharded(replicated)
  sharded, _ = sharding.init_sharded(
      Mlp().init, *args, mesh=mesh, rules=sharding.logical_rules(("data", "fsdp")))
  sharding.assert_params_sharded(sharded)


def test_summary_has_one_line_per_parameter_with_path_shape_and_spec(mesh):
  params = {"dense": {"kernel": put(mesh, (32, 8), P("fsdp", None)), "bias": put(mesh, (8,), P())},
            "table": put(mesh, (16, 4), P(("data", "fsdp")))}
  lines = sharding.sharding_summary(params).splitlines()
  assert len(lines) == 3
  by_path = {line.split()[0]: line for line in lines}
  assert set(by_path) == {"dense/kernel", "dense/bias", "table"}
  assert "(32, 8)" in by_path["dense/kernel"] and "P('fsdp', None)" in by_path["dense/kernel"]
  assert "(8,)" in by_path["dense/bias"] and "P(None)" in by_path["dense/bias"]
  assert "P(('data', 'fsdp'), None)" in by_path["table"]


def test_summary_looks_through_logical_boxes(mesh):
  boxed = {"w": nn.LogicallyPartitioned(put(mesh, (32, 8), P("fsdp")), (EMBED, MLP))}
  line, = sharding.sharding_summary(boxed).splitlines()
  assert line.split()[0] == "w" and "P('fsdp', None)" in line

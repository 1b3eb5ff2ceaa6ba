"""make_global_batch on 8 fake CPU devices: values preserved, batch dim sharded."""

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest

from jaxlab.data import make_global_batch


def _local_batch(batch_size: int = 16) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  return {
      "ids": np.arange(batch_size, dtype=np.int32),
      "x": rng.normal(size=(batch_size, 5)).astype(np.float32),
      "image": rng.normal(size=(batch_size, 4, 4, 3)).astype(np.float32),
  }


def _assert_shards_follow_batch_dim(array: jax.Array, expected: np.ndarray, rows_per_shard: int):
  assert array.shape == expected.shape
  for shard in array.addressable_shards:
    assert shard.data.shape == (rows_per_shard, *expected.shape[1:])
    np.testing.assert_array_equal(np.asarray(shard.data), expected[shard.index])


def test_global_batch_equals_input_and_is_sharded_over_data():
  mesh = jax.make_mesh((8,), ("data",))
  local = _local_batch()
  global_batch = make_global_batch(local, NamedSharding(mesh, P("data", None)))
  assert jax.process_count() == 1
  for key, value in local.items():
    array = global_batch[key]
    assert isinstance(array, jax.Array)
    np.testing.assert_array_equal(np.asarray(array), value)
    assert array.sharding.spec == P("data", *([None] * (value.ndim - 1)))
    _assert_shards_follow_batch_dim(array, value, rows_per_shard=2)


def test_non_batch_mesh_axes_are_replicated_per_leaf():
  mesh = jax.make_mesh((4, 2), ("data", "model"))
  local = _local_batch()
  # The given spec also splits dim 1 over "model"; only the batch-dim axes must survive.
  global_batch = make_global_batch(local, NamedSharding(mesh, P("data", "model")))
  for key, value in local.items():
    array = global_batch[key]
    np.testing.assert_array_equal(np.asarray(array), value)
    _assert_shards_follow_batch_dim(array, value, rows_per_shard=4)
    assert len(array.addressable_shards) == 8  # each row block lives on both "model" devices


def test_batch_dim_over_several_mesh_axes():
  mesh = jax.make_mesh((2, 4), ("data", "fsdp"))
  local = _local_batch()
  global_batch = make_global_batch(local, NamedSharding(mesh, P(("data", "fsdp"))))
  for key, value in local.items():
    np.testing.assert_array_equal(np.asarray(global_batch[key]), value)
    _assert_shards_follow_batch_dim(global_batch[key], value, rows_per_shard=2)


def test_scalar_leaf_is_rejected_with_its_path():
  mesh = jax.make_mesh((8,), ("data",))
  with pytest.raises(ValueError, match="scalar"):
    make_global_batch({"step": np.int32(3)}, NamedSharding(mesh, P("data")))

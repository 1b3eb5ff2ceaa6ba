"""Tests for make_mesh: axis order, defaults, fill, and every error."""

import jax
import pytest

from jaxlab import sharding


def mesh_sizes(mesh):
  return dict(mesh.shape)


def test_all_five_axes_in_order_with_missing_axes_of_size_one():
  mesh = sharding.make_mesh({"data": 8})
  assert mesh.axis_names == ("data", "fsdp", "context", "tensor", "expert")
  assert mesh_sizes(mesh) == {"data": 8, "fsdp": 1, "context": 1, "tensor": 1, "expert": 1}


@pytest.mark.parametrize(
    "requested, filled_axis, filled_size",
    [({"data": 2, "fsdp": -1}, "fsdp", 4), ({"tensor": -1}, "tensor", 8),
     ({"data": -1, "fsdp": 2, "tensor": 2}, "data", 2), ({"expert": -1, "data": 8}, "expert", 1),
     ({"data": 2, "context": -1}, "context", 4)],
)
def test_minus_one_fills_the_remaining_devices(requested, filled_axis, filled_size):
  mesh = sharding.make_mesh(requested)
  assert mesh_sizes(mesh)[filled_axis] == filled_size
  assert mesh.devices.size == len(jax.devices())


def test_mesh_uses_every_device_exactly_once():
  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  assert sorted(d.id for d in mesh.devices.flat) == sorted(d.id for d in jax.devices())


def test_explicit_devices_are_the_only_ones_used():
  devices = jax.devices()[4:]
  mesh = sharding.make_mesh({"fsdp": -1}, devices=devices)
  assert mesh_sizes(mesh)["fsdp"] == 4
  assert set(mesh.devices.flat) == set(devices)


def test_mesh_axes_are_auto():
  mesh = sharding.make_mesh({"fsdp": 8})
  assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)


def test_product_mismatch_states_sizes_product_and_device_count():
  with pytest.raises(ValueError) as info:
    sharding.make_mesh({"data": 2, "fsdp": 2})
  message = str(info.value)
  assert "'data': 2" in message and "'fsdp': 2" in message and "'context': 1" in message
  assert "'tensor': 1" in message
  assert "multiply to 4" in message
  assert "device count is 8" in message


def test_no_sizes_at_all_is_a_mismatch_on_several_devices():
  with pytest.raises(ValueError, match="multiply to 1"):
    sharding.make_mesh({})


def test_too_many_devices_requested():
  with pytest.raises(ValueError, match="multiply to 16"):
    sharding.make_mesh({"data": 2, "fsdp": 8})


def test_fill_that_does_not_divide_the_device_count():
  with pytest.raises(ValueError) as info:
    sharding.make_mesh({"data": 3, "fsdp": -1})
  message = str(info.value)
  assert "'fsdp'" in message and "3" in message and "device count 8" in message


def test_unknown_axis_lists_valid_axes():
  with pytest.raises(ValueError) as info:
    sharding.make_mesh({"data": 2, "model": 4})
  message = str(info.value)
  assert "'model'" in message
  for axis in sharding.MESH_AXES:
    assert repr(axis) in message


def test_more_than_one_fill_is_an_error():
  with pytest.raises(ValueError) as info:
    sharding.make_mesh({"data": -1, "tensor": -1})
  assert "'data'" in str(info.value) and "'tensor'" in str(info.value)


@pytest.mark.parametrize("bad", [0, -2, 2.0, True, "2"])
def test_bad_axis_size_is_an_error(bad):
  with pytest.raises(ValueError, match="'data' has size"):
    sharding.make_mesh({"data": bad, "fsdp": -1})

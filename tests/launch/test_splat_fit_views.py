"""How many views a scene-fitting step renders, and the settings the job refuses."""

import types

import pytest

from launch.config_loader import ConfigError, apply_overrides, load_config
from launch import validate
from launch.tasks import splat_fit

MESH_8 = {"data": 8, "fsdp": 1, "tensor": 1, "expert": 1}


def _mesh(data: int):
  return types.SimpleNamespace(shape={"data": data})


@pytest.mark.parametrize("data_axis", [1, 2, 4, 8])
def test_default_renders_views_per_device_on_every_device_of_the_data_axis(data_axis):
  config = load_config("configs/splat_fit.py")
  splat_fit.check_config(config, {**MESH_8, "data": data_axis})
  assert splat_fit.views_per_step(config, _mesh(data_axis)) == config.data.views_per_device * data_axis == 2 * data_axis


def test_an_explicit_views_per_step_wins_and_must_divide_over_the_data_axis():
  config = apply_overrides(load_config("configs/splat_fit.py"), {"data.views_per_step": 6})
  assert splat_fit.views_per_step(config, _mesh(2)) == 6
  with pytest.raises(ConfigError, match="data.views_per_step"):
    splat_fit.check_config(config, MESH_8)


@pytest.mark.parametrize("bad", [0, -1])
def test_views_per_device_below_one_is_refused_naming_the_key(bad):
  config = apply_overrides(load_config("configs/splat_fit.py"), {"data.views_per_device": bad})
  with pytest.raises(ConfigError, match=r"data\.views_per_device=-?\d must be at least 1"):
    validate.check_config(config, splat_fit, 8)
  validate.check_config(apply_overrides(config, {"data.views_per_device": 1}), splat_fit, 8)

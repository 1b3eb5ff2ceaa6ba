"""configs/common.py: variant selection and mesh presets."""

import pytest

from configs import common


def test_pick_variant():
  assert common.pick_variant(None, ("default", "smoke")) == "default"
  assert common.pick_variant("", ("default", "smoke")) == "default"
  assert common.pick_variant("smoke", ("default", "smoke")) == "smoke"
  with pytest.raises(ValueError, match="valid variants: default, smoke"):
    common.pick_variant("huge", ("default", "smoke"))


def test_mesh_presets_fill_one_axis_and_are_copies():
  for name in common.MESH_PRESETS:
    preset = common.mesh_preset(name)
    assert list(preset.values()).count(-1) == 1, name
    preset["data"] = 99
    assert common.MESH_PRESETS[name]["data"] != 99
  with pytest.raises(ValueError, match="valid presets: data"):
    common.mesh_preset("pipeline")

"""Settings refused when a run starts, naming the key and a value that works; every config's
default and smoke variants pass on 1, 2, 4 and 8 devices."""

import importlib.util
import pathlib

import ml_collections
import pytest

from launch.config_loader import ConfigError, apply_overrides, load_config
from launch.tasks import get_task
from launch.validate import batch_split, check_config, check_counts, check_dtypes, check_mesh, require_divisible

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (REPO / "configs").glob("*.py") if p.name not in ("__init__.py", "common.py"))


def test_negative_counts_and_zero_intervals_are_refused():
  with pytest.raises(ConfigError, match=r"train\.num_steps=-1 is a count and cannot be negative"):
    check_counts({"train.num_steps": -1})
  with pytest.raises(ConfigError, match=r"train\.log_every=0 must be at least 1"):
    check_counts({"train.log_every": 0})
  with pytest.raises(ConfigError, match=r"data\.global_batch_size=0 must be at least 1"):
    check_counts({"data.global_batch_size": 0})
  check_counts({"mesh.data": -1, "train.eval_every": 0, "seed": -3, "data.views_per_step": 0})


def test_unknown_dtype_names_are_refused():
  with pytest.raises(ConfigError, match=r"model\.dtype='fp32' is not a dtype name.*float32, bfloat16"):
    check_dtypes({"model.dtype": "fp32"})
  with pytest.raises(ConfigError, match=r"model\.param_dtype='int8'"):
    check_dtypes({"model.param_dtype": "int8"})
  check_dtypes({"model.dtype": "bfloat16", "data.dtype_note": "anything"})


def test_a_mesh_that_does_not_fit_names_a_working_setting():
  config = ml_collections.ConfigDict({"mesh": {"data": 2, "fsdp": -1}})
  assert check_mesh(config, 8) == {"data": 2, "fsdp": 4, "context": 1, "tensor": 1, "expert": 1}
  with pytest.raises(ConfigError, match=r"does not fit the 1 device\(s\).*--config\.mesh\.data=1"):
    check_mesh(config, 1)


def test_batch_split_follows_the_batch_rule():
  config = ml_collections.ConfigDict({"sharding": {"presets": ("data", "fsdp")}})
  assert batch_split(config, {"data": 2, "fsdp": 4, "context": 1, "tensor": 1, "expert": 1}) == 8
  config.sharding.presets = ("data",)
  assert batch_split(config, {"data": 2, "fsdp": 4, "context": 1, "tensor": 1, "expert": 1}) == 2
  with pytest.raises(ConfigError, match=r"data\.global_batch_size=12 does not divide over the 8 .*--config\.data\.global_batch_size=16"):
    require_divisible("data.global_batch_size", 12, 8, "devices")


def _variants(path) -> tuple[str, ...]:
  spec = importlib.util.spec_from_file_location(f"config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return tuple(module.VARIANTS)


@pytest.mark.parametrize("num_devices", [1, 2, 4, 8])
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_variant_fits_1_2_4_and_8_devices(path, num_devices, tmp_path):
  assert {"default", "smoke"} <= set(_variants(path)), path.name
  for variant in ("default", "smoke"):
    config = load_config(f"{path}:{variant}")
    if "model" in config and isinstance(config.model, str):  # a task that reads a trained model folder
      config = apply_overrides(config, {"model": str(tmp_path)})
    check_config(config, get_task(config.task), num_devices)


def test_mxmoe_agreement_longer_than_the_generation_is_refused_at_start(tmp_path):
  config = apply_overrides(load_config("configs/mxmoe_quantize.py:smoke"),
                           {"model": str(tmp_path), "evaluation.new_tokens": 4, "evaluation.agreement_k": 8})
  with pytest.raises(ConfigError, match=r"evaluation\.agreement_k=8 .*new_tokens=4.*agreement_k=4"):
    check_config(config, get_task(config.task), 1)

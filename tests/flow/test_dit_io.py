"""A saved DiT loads back with the same outputs; bad directories are named in the error."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.flow.dit import DiT, DiTConfig
from jaxlab.flow.dit_io import load_dit, save_dit

CONFIG = DiTConfig(image_size=8, patch_size=2, width=16, depth=1, num_heads=2, num_classes=3)


@jax.jit
def _init(key):
  x = jnp.zeros((1, 8, 8, 3))
  return DiT(CONFIG).init(key, x, jnp.ones((1,)), jnp.zeros((1,), jnp.int32))["params"]


def _params(seed=0):
  return _init(jax.random.key(seed))


@pytest.mark.slow  # Compile-heavy; the default tier covers the same code more cheaply.
def test_round_trip_keeps_config_and_outputs(tmp_path):
  # Perturb the zero-initialised output layers so the comparison is not trivially 0 == 0.
  rng = np.random.default_rng(5)
  params = jax.tree.map(lambda p: np.asarray(p) + 0.05 * rng.standard_normal(p.shape).astype(np.float32),
                        _params())
  save_dit(tmp_path / "m", CONFIG, params)
  model, config, loaded = load_dit(tmp_path / "m")
  assert config == CONFIG
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
  sigma, labels = jnp.asarray([0.3, 0.9]), jnp.asarray([0, 2])
  apply = jax.jit(lambda p: model.apply({"params": p}, x, sigma, labels))  # One compile for both.
  want, got = apply(params), apply(loaded)
  assert float(jnp.max(jnp.abs(want))) > 0
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_existing_model_is_not_replaced_without_overwrite(tmp_path):
  save_dit(tmp_path, CONFIG, _params())
  before = (tmp_path / "params.msgpack").read_bytes()
  with pytest.raises(FileExistsError, match="overwrite"):
    save_dit(tmp_path, CONFIG, _params(seed=1))
  assert (tmp_path / "params.msgpack").read_bytes() == before


def test_missing_files_and_mismatched_params_are_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="config.json, params.msgpack"):
    load_dit(tmp_path)
  wider = DiTConfig(image_size=8, patch_size=2, width=32, depth=1, num_heads=2, num_classes=3)
  save_dit(tmp_path, CONFIG, _params())
  (tmp_path / "config.json").write_text((tmp_path / "config.json").read_text().replace('"width": 16', '"width": 32'))
  assert wider.width == 32
  with pytest.raises(ValueError, match="does not match"):
    load_dit(tmp_path)


def test_non_finite_params_and_broken_config_json_are_named(tmp_path):
  params = jax.tree.map(np.array, nn.meta.unbox(_params()))
  params["block_0"]["mlp"]["fc_out"]["kernel"][2, 1] = np.nan
  save_dit(tmp_path, CONFIG, params)
  message = r"parameter \['block_0'\]\['mlp'\]\['fc_out'\]\['kernel'\] in .*params.msgpack holds 1 non-finite"
  with pytest.raises(ValueError, match=message):
    load_dit(tmp_path)
  (tmp_path / "config.json").write_text('{"image_size": 8,\n "width": 16\n "depth": 1}')
  with pytest.raises(ValueError, match=r"config.json is not valid JSON: .* line 3, column 2"):
    load_dit(tmp_path)


"""VLM supervised fine-tuning end to end (in process): the smoke variant learns the shapes task; frozen vision stays fixed."""

import json

import jax
import jax.numpy as jnp
import optax
import pytest

from configs.vlm_sft import SMOKE_MIN_ACCURACY
from launch.config_loader import apply_overrides, load_config
from launch.tasks import vlm_sft

pytestmark = pytest.mark.e2e

def test_freeze_vision_gives_the_vision_tower_zero_updates():
  params = {"vision_tower": {"w": jnp.ones((3, 2))}, "projector": {"w": jnp.ones((2,))},
            "language_model": {"w": jnp.ones((4,))}}
  grads = jax.tree.map(lambda x: jnp.full_like(x, 0.5), params)
  for freeze in (True, False):
    optimizer = vlm_sft.with_frozen_vision(optax.adam(1e-2), freeze)
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    assert bool(jnp.all(updates["vision_tower"]["w"] == 0)) == freeze
    assert bool(jnp.all(updates["language_model"]["w"] != 0)) and bool(jnp.all(updates["projector"]["w"] != 0))


@pytest.mark.slow
def test_smoke_variant_learns_the_shapes_task(tmp_path):
  config = apply_overrides(load_config("configs/vlm_sft.py:smoke"), {"mesh.data": 1, "mesh.fsdp": -1})
  result = vlm_sft.run(config, tmp_path)
  assert result.status == "completed"
  assert result.last_eval_metrics["answer_accuracy"] >= SMOKE_MIN_ACCURACY
  assert json.loads((tmp_path / "accuracy.json").read_text())["answer_accuracy"] >= SMOKE_MIN_ACCURACY


def _vision_and_language_after(tmp_path, num_steps):
  config = apply_overrides(load_config("configs/vlm_sft.py:smoke"), {
      "mesh.data": 1, "mesh.fsdp": -1, "model.freeze_vision": True, "train.num_steps": num_steps,
      "train.log_every": 1, "train.eval_every": 1000, "data.num_eval": 4, "checkpoint.async_save": False})
  result = vlm_sft.run(config, tmp_path / f"steps{num_steps}")
  assert result.status == "completed" and result.final_step == num_steps
  params = jax.device_get(result.state.params)
  return params["vision_tower"], params["language_model"]


@pytest.mark.slow
def test_frozen_vision_tower_is_unchanged_by_a_whole_run(tmp_path):
  # Same seed, so both runs start from the same weights: a frozen tower ends where it began.
  vision_1, language_1 = _vision_and_language_after(tmp_path, 1)
  vision_4, language_4 = _vision_and_language_after(tmp_path, 4)
  for a, b in zip(jax.tree.leaves(vision_1), jax.tree.leaves(vision_4)):
    assert bool(jnp.array_equal(a, b))
  assert any(not bool(jnp.array_equal(a, b)) for a, b in zip(jax.tree.leaves(language_1), jax.tree.leaves(language_4)))


@pytest.mark.slow
def test_v2pe_sampling_trains_and_decodes_from_fractional_positions(tmp_path):
  config = apply_overrides(load_config("configs/vlm_sft.py:smoke"), {
      "mesh.data": 1, "mesh.fsdp": -1, "data.v2pe": "sample", "data.v2pe_eval_delta": 0.25, "train.num_steps": 3,
      "train.log_every": 1, "train.eval_every": 1000, "data.num_eval": 4, "checkpoint.async_save": False})
  result = vlm_sft.run(config, tmp_path)
  assert result.status == "completed" and result.final_step == 3
  accuracy = json.loads((tmp_path / "accuracy.json").read_text())
  assert accuracy["v2pe"] == "sample" and accuracy["v2pe_eval_delta"] == 0.25

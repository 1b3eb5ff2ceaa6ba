"""VLM supervised fine-tuning end to end (in process): the smoke variant learns the shapes task; frozen vision stays fixed."""

import json

import jax
import jax.numpy as jnp
import optax
import pytest

from configs.vlm_sft import SMOKE_MIN_ACCURACY
from launch.config_loader import apply_overrides, load_config
from launch.tasks import vlm_sft

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

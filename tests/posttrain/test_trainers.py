"""Post-training steps on a tiny Qwen2 LM: the reference stays frozen, the preference and GRPO
steps learn, sampling is reproducible, and one or several devices give the same loss."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlab.models.qwen2 import Qwen2Config, Qwen2LM
from jaxlab.posttrain import (GrpoSettings, PreferenceTrainState, ReferencePolicy, lm_logits_fn, lm_sampler,
                              make_grpo_step, make_preference_step, rollout_batch, token_logprobs)
from jaxlab.sharding import axis_rules, init_sharded, logical_rules, make_mesh
from jaxlab.train import TrainState

VOCAB, EOS, PAD = 24, 1, 0
CONFIG = Qwen2Config(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                     num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)


def _pair_batch(b: int = 4) -> dict:
  """Prompts [5, 6, 7] (+ row id); chosen responses [10, 11, EOS], rejected [12, 13, 14, EOS]; right padded to 9."""
  chosen, rejected = np.zeros((b, 9), np.int32), np.zeros((b, 9), np.int32)
  chosen_mask, rejected_mask = np.zeros((b, 9), np.float32), np.zeros((b, 9), np.float32)
  for i in range(b):
    prompt = [5, 6, 7, 15 + i]
    chosen[i, :7] = prompt + [10, 11, EOS]
    rejected[i, :8] = prompt + [12, 13, 14, EOS]
    chosen_mask[i, 4:7] = 1
    rejected_mask[i, 4:8] = 1
  return {"chosen_ids": jnp.asarray(chosen), "chosen_mask": jnp.asarray(chosen_mask),
          "rejected_ids": jnp.asarray(rejected), "rejected_mask": jnp.asarray(rejected_mask)}


@functools.cache
def _params():
  model = Qwen2LM(CONFIG)
  return model, model.init(jax.random.key(0), jnp.zeros((1, 4), jnp.int32))["params"]


def test_first_mpo_step_sees_the_hand_computable_terms_and_the_reference_never_moves():
  model, params = _params()
  logits_fn = lm_logits_fn(model)
  reference = ReferencePolicy(logits_fn, params)
  frozen = jax.device_get(reference.params)
  optimizer = optax.adam(1e-2)
  step = make_preference_step(logits_fn, optimizer, weights="mpo")
  state = PreferenceTrainState.create(jax.tree.map(jnp.copy, params), optimizer)
  batch = _pair_batch()
  logits = logits_fn(params, {"input_ids": batch["chosen_ids"]})
  nll = -np.sum(token_logprobs(logits, batch["chosen_ids"]) * batch["chosen_mask"], axis=1) / 3

  metrics = []
  for _ in range(30):
    state, m = step(state, reference.with_pair_logprobs(batch), jax.random.key(1))
    metrics.append(jax.device_get(m))
  first = metrics[0]
  # Policy == reference at the first step: every reward is 0, DPO = log 2, BCO-pair = 2 log 2 (delta = 0).
  np.testing.assert_allclose(first["preference"], math.log(2), rtol=1e-6)
  np.testing.assert_allclose(first["quality"], 2 * math.log(2), rtol=1e-6)
  np.testing.assert_allclose(first["generation"], nll.mean(), rtol=1e-5)
  np.testing.assert_allclose(first["loss"], 0.8 * math.log(2) + 0.2 * 2 * math.log(2) + nll.mean(), rtol=1e-5)
  last = metrics[-1]
  assert last["preference"] < 0.6 * math.log(2) and last["reward_accuracy"] == 1.0
  assert int(state.bco.count) == 30 and float(state.bco.delta) != 0.0
  for before, after in zip(jax.tree.leaves(frozen), jax.tree.leaves(jax.device_get(reference.params))):
    np.testing.assert_array_equal(before, after)  # bit-identical


def test_dpo_preset_has_no_quality_or_generation_term():
  model, params = _params()
  logits_fn = lm_logits_fn(model)
  reference = ReferencePolicy(logits_fn, params)
  optimizer = optax.sgd(0.0)
  state = PreferenceTrainState.create(jax.tree.map(jnp.copy, params), optimizer)
  _, m = make_preference_step(logits_fn, optimizer, weights="dpo")(state, reference.with_pair_logprobs(_pair_batch()),
                                                                   jax.random.key(0))
  np.testing.assert_allclose(m["loss"], math.log(2), rtol=1e-6)
  with pytest.raises(ValueError, match="unknown preference loss"):
    make_preference_step(logits_fn, optimizer, weights="ipo")


def _grpo_run(params, *, seed: int, steps: int, updates_per_batch: int = 1, mesh=None):
  """GRPO that rewards completions for how many times token 10 appears."""
  model = Qwen2LM(CONFIG)
  logits_fn = lm_logits_fn(model)
  settings = GrpoSettings(group_size=4, updates_per_batch=updates_per_batch)
  sampler = lm_sampler(model, group_size=4, max_new_tokens=4, eos_id=EOS, pad_id=PAD, temperature=1.0, top_p=0.95)
  reward = lambda prompts, completions: (completions == 10).sum(axis=1).astype(np.float32)
  reference = ReferencePolicy(logits_fn, params)
  optimizer = optax.adam(3e-2)
  step = make_grpo_step(logits_fn, sampler, reward, reference, optimizer, eos_id=EOS, settings=settings)
  state = TrainState.create(jax.tree.map(jnp.copy, params), optimizer)
  prompts = {"input_ids": jnp.asarray([[5, 6, 7], [8, 9, 7]], jnp.int32)}
  history = []
  for _ in range(steps):
    state, m = step(state, prompts, jax.random.key(seed))
    history.append(jax.device_get(m))
  return state, history


def test_grpo_raises_the_reward_and_is_reproducible_from_the_seed():
  _, params = _params()
  state_a, history_a = _grpo_run(params, seed=3, steps=12)
  state_b, history_b = _grpo_run(params, seed=3, steps=2)
  _, history_c = _grpo_run(params, seed=4, steps=2)
  assert [h["reward"] for h in history_a[:2]] == [h["reward"] for h in history_b]
  assert [h["reward"] for h in history_c] != [h["reward"] for h in history_b]
  early, late = np.mean([h["reward"] for h in history_a[:3]]), np.mean([h["reward"] for h in history_a[-3:]])
  assert late > early + 0.5, (early, late)
  assert all(np.isfinite(h["loss"]) and h["kl"] >= 0 for h in history_a)


def test_grpo_with_clipped_updates_takes_several_steps_per_rollout():
  _, params = _params()
  state, history = _grpo_run(params, seed=3, steps=2, updates_per_batch=3)
  assert int(state.step) == 6 and all(np.isfinite(h["loss"]) for h in history)


def _sharded_preference_loss(mesh_sizes: dict, devices) -> tuple[float, float]:
  mesh = make_mesh(mesh_sizes, devices)
  rules = logical_rules(("data", "fsdp"))
  model = Qwen2LM(CONFIG)
  logits_fn = lm_logits_fn(model)
  optimizer = optax.adam(1e-2)
  with jax.set_mesh(mesh), axis_rules(rules):
    variables, _ = init_sharded(model.init, jax.random.key(0), jnp.zeros((1, 4), jnp.int32), mesh=mesh, rules=rules)
    params = variables["params"]
    reference = ReferencePolicy(logits_fn, params)
    state = PreferenceTrainState.create(jax.tree.map(jnp.copy, params), optimizer)
    shardings = jax.tree.map(lambda x: x.sharding, state)
    row = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp")))
    batch = jax.tree.map(lambda x: jax.device_put(x, row), _pair_batch(8))
    step = make_preference_step(logits_fn, optimizer, weights="mpo", state_shardings=shardings)
    losses = []
    for _ in range(2):
      state, m = step(state, reference.with_pair_logprobs(batch), jax.random.key(0))
      losses.append(float(m["loss"]))
  return losses


def test_one_and_several_devices_give_the_same_preference_loss():
  devices = jax.devices()
  if len(devices) < 4:
    pytest.skip("needs 4 devices (XLA_FLAGS=--xla_force_host_platform_device_count=8)")
  one = _sharded_preference_loss({"data": 1}, devices[:1])
  four = _sharded_preference_loss({"data": 2, "fsdp": 2}, devices[:4])
  np.testing.assert_allclose(four, one, rtol=1e-5)


def _sharded_grpo_step(mesh_sizes: dict, devices):
  """One GRPO step with prompts over "data" and parameters over "fsdp": (completions, loss)."""
  mesh = make_mesh(mesh_sizes, devices)
  rules = logical_rules(("data", "fsdp"))
  model = Qwen2LM(CONFIG)
  logits_fn = lm_logits_fn(model)
  optimizer = optax.adam(1e-2)
  seen = {}

  def reward(prompts, completions):
    seen["completions"] = completions
    return (completions == 10).sum(axis=1).astype(np.float32) + 0.1 * np.arange(len(completions)) % 3

  with jax.set_mesh(mesh), axis_rules(rules):
    variables, _ = init_sharded(model.init, jax.random.key(0), jnp.zeros((1, 4), jnp.int32), mesh=mesh, rules=rules)
    params = variables["params"]
    state = TrainState.create(jax.tree.map(jnp.copy, params), optimizer)
    rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp")))
    sampler = lm_sampler(model, group_size=2, max_new_tokens=3, eos_id=EOS, pad_id=PAD)
    step = make_grpo_step(logits_fn, sampler, reward, ReferencePolicy(logits_fn, params), optimizer, eos_id=EOS,
                          settings=GrpoSettings(group_size=2), state_shardings=jax.tree.map(lambda x: x.sharding, state),
                          rollout_sharding=lambda batch: jax.tree.map(lambda x: jax.device_put(x, rows), batch))
    prompts = jax.device_put(jnp.asarray([[5, 6, 7], [8, 9, 7], [5, 9, 7], [8, 6, 7]], jnp.int32), rows)
    _, metrics = step(state, {"input_ids": prompts}, jax.random.key(2))
  return seen["completions"], float(metrics["loss"])


@pytest.mark.slow
def test_one_and_several_devices_sample_the_same_completions_and_give_the_same_grpo_loss():
  devices = jax.devices()
  if len(devices) < 4:
    pytest.skip("needs 4 devices (XLA_FLAGS=--xla_force_host_platform_device_count=8)")
  completions_one, loss_one = _sharded_grpo_step({"data": 1}, devices[:1])
  completions_four, loss_four = _sharded_grpo_step({"data": 2, "fsdp": 2}, devices[:4])
  np.testing.assert_array_equal(completions_four, completions_one)
  np.testing.assert_allclose(loss_four, loss_one, rtol=1e-5)


def test_rollout_rows_repeat_each_prompt_and_mask_the_completion_up_to_its_eos():
  prompts = {"input_ids": jnp.asarray([[0, 5, 6], [7, 8, 9]], jnp.int32),
             "attention_mask": jnp.asarray([[0, 1, 1], [1, 1, 1]], bool),
             "pixels": jnp.arange(2 * 1 * 2 * 2 * 3, dtype=jnp.float32).reshape(2, 1, 2, 2, 3)}
  completions = jnp.asarray([[10, EOS, PAD], [11, 12, 13], [EOS, PAD, PAD], [14, EOS, PAD]], jnp.int32)
  rollout = rollout_batch(prompts, completions, group_size=2, eos_id=EOS)
  np.testing.assert_array_equal(rollout["input_ids"][:, :3], [[0, 5, 6], [0, 5, 6], [7, 8, 9], [7, 8, 9]])
  np.testing.assert_array_equal(rollout["attention_mask"][0], [0, 1, 1, 1, 1, 1])
  np.testing.assert_array_equal(rollout["response_mask"],
                                [[0, 0, 0, 1, 1, 0], [0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 0, 0], [0, 0, 0, 1, 1, 0]])
  assert rollout["pixels"].shape == (4, 2, 2, 3)
  np.testing.assert_array_equal(rollout["pixels"][1], prompts["pixels"][0, 0])
  np.testing.assert_array_equal(rollout["pixels"][2], prompts["pixels"][1, 0])
  with pytest.raises(ValueError, match="completions for 2 prompts"):
    rollout_batch(prompts, completions[:3], group_size=2, eos_id=EOS)


def test_an_moe_lm_scores_pairs_through_the_same_forward():
  from jaxlab.moe.models import MoEDecoderLM, MoELMConfig
  from jaxlab.posttrain import moe_logits_fn, pair_forward
  config = MoELMConfig("mixtral", vocab_size=VOCAB, hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1,
                       head_dim=8, num_experts=4, top_k=2, moe_intermediate_size=8)
  model = MoEDecoderLM(config)
  params = model.init(jax.random.key(0), jnp.zeros((1, 4), jnp.int32))["params"]
  logits_fn = moe_logits_fn(model)
  batch = _pair_batch(2)
  scores = pair_forward(logits_fn, params, batch)
  logits, _ = model.apply({"params": params}, batch["chosen_ids"])
  expected = np.sum(np.asarray(token_logprobs(logits, batch["chosen_ids"])) * np.asarray(batch["chosen_mask"]), axis=1)
  np.testing.assert_allclose(scores.chosen_b, expected, rtol=1e-5)
  assert np.all(np.asarray(scores.rejected_b) < 0)
  with pytest.raises(ValueError, match="pad on the right"):
    logits_fn(params, {"input_ids": batch["chosen_ids"], "attention_mask": jnp.asarray([[0] + [1] * 8] * 2)})

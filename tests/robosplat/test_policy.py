"""Visuomotor policy: shapes, normalizer, masked loss, overfitting, data parallelism, closed-loop runner."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlab.robosplat.augment import AugmentSettings, make_augment
from jaxlab.robosplat.policy import (
    Normalizer,
    ObjectStats,
    PolicyConfig,
    PolicyRunner,
    VisuomotorPolicy,
    action_chunks,
    dummy_inputs,
    fit_normalizer,
    init_policy_params,
    make_policy_loss_fn,
    make_policy_train_step,
    spatial_softmax,
)
from jaxlab.sharding import axis_rules, batch_sharding, init_sharded, logical_rules, make_mesh
from jaxlab.train import TrainState

CONFIG = PolicyConfig.preset("tiny", image_size=16, chunk=4)
MODEL = VisuomotorPolicy(CONFIG)


def _normalizer(seed=0):
  rng = np.random.default_rng(seed)
  states = rng.normal(0.3, 0.5, (64, 8))
  actions = states[:, None, :] + rng.normal(0.1, 0.2, (64, CONFIG.chunk, 8))
  actions[..., 7] = rng.integers(0, 2, (64, CONFIG.chunk))
  return fit_normalizer(states, actions)


NORMALIZER = _normalizer()
# One compiled loss shared by the tests (batches of 8): compiling dominates these tests on CPU.
_LOSS = jax.jit(make_policy_loss_fn(MODEL, NORMALIZER))


def _batch(seed, batch_size=8, config=CONFIG):
  rng = np.random.default_rng(seed)
  s = config.image_size
  return {
      "images": jnp.asarray(rng.integers(0, 256, (batch_size, config.num_cameras, s, s, 3)), jnp.uint8),
      "state": jnp.asarray(rng.normal(0.3, 0.5, (batch_size, 8)), jnp.float32),
      "actions": jnp.asarray(np.concatenate([rng.normal(0.3, 0.5, (batch_size, config.chunk, 7)),
                                             rng.integers(0, 2, (batch_size, config.chunk, 1))], -1), jnp.float32),
      "action_mask": jnp.asarray(rng.random((batch_size, config.chunk)) < 0.6),
  }


@pytest.fixture(scope="module")
def init_params():
  return init_policy_params(MODEL, jax.random.key(0))


@pytest.fixture(scope="module")
def random_params(init_params):
  """Every parameter random, so the zero-initialised head does not hide the rest of the model."""
  rng = np.random.default_rng(1)
  return jax.tree.map(lambda leaf: jnp.asarray(0.3 * rng.standard_normal(leaf.shape), leaf.dtype), init_params)


@jax.jit
def _apply(params, normalizer, images, state):
  return MODEL.apply({"params": params}, images, state, normalizer)


def test_fresh_policy_predicts_the_mean_offset_or_pose_with_the_gripper_undecided(init_params):
  normalizer, batch = NORMALIZER, _batch(0)
  models = {mode: VisuomotorPolicy(dataclasses.replace(CONFIG, joint_targets=mode)) for mode in ("delta", "absolute")}
  # joint_targets changes no parameter, so one set of parameters serves both.
  outs = jax.jit(lambda p, i, s: {m: model.apply({"params": p}, i, s, normalizer) for m, model in models.items()})(
      init_params, batch["images"], batch["state"])
  expected = {"delta": np.asarray(batch["state"])[:, None, :7] + np.asarray(normalizer.delta_mean),
              "absolute": np.asarray(normalizer.joint_mean)}
  for mode, out in outs.items():
    assert out.shape == (8, CONFIG.chunk, 8) and out.dtype == jnp.float32
    np.testing.assert_allclose(out[..., :7], np.broadcast_to(expected[mode], (8, CONFIG.chunk, 7)), atol=1e-5)
    np.testing.assert_array_equal(out[..., 7], 0.0)


def test_output_depends_on_images_state_and_camera_order(random_params):
  normalizer, batch = NORMALIZER, _batch(1)
  images, state = batch["images"], batch["state"]
  out = np.asarray(_apply(random_params, normalizer, images, state))
  assert np.all(np.isfinite(out)) and np.std(out) > 0
  assert np.abs(out - _apply(random_params, normalizer, images[:, ::-1], state)).max() > 1e-4
  assert np.abs(out - _apply(random_params, normalizer, images, state + 0.1)).max() > 1e-4
  # Samples are independent: one sample's output does not depend on the others.
  np.testing.assert_allclose(_apply(random_params, normalizer, images[:1], state[:1])[0], out[0], atol=1e-5)
  # float images in [0, 1] are the same input as uint8.
  np.testing.assert_allclose(_apply(random_params, normalizer, images.astype(jnp.float32) / 255, state), out,
                             atol=1e-5)


def test_bad_inputs_raise_naming_the_item(random_params):
  normalizer, batch = NORMALIZER, _batch(2)
  with pytest.raises(ValueError, match="cameras"):
    MODEL.apply({"params": random_params}, batch["images"][:, :1], batch["state"], normalizer)
  with pytest.raises(ValueError, match="state"):
    MODEL.apply({"params": random_params}, batch["images"], batch["state"][:, :7], normalizer)
  with pytest.raises(ValueError, match="groups"):
    PolicyConfig(conv_channels=(12, 16), conv_strides=(1, 1), groups=8)
  with pytest.raises(ValueError, match="joint_targets"):
    PolicyConfig(joint_targets="relative")
  with pytest.raises(ValueError, match="preset"):
    PolicyConfig.preset("huge")
  loss_fn = make_policy_loss_fn(MODEL, normalizer)
  with pytest.raises(ValueError, match="actions"):
    loss_fn(random_params, dict(batch, actions=batch["actions"][:, :2]), jax.random.key(0))


def test_parameters_carry_logical_axes():
  boxed = jax.eval_shape(MODEL.init, jax.random.key(0), *dummy_inputs(CONFIG))["params"]
  assert boxed["encoder"]["conv_0"]["kernel"].names == (None, None, None, "mlp")
  assert boxed["mlp_1"]["kernel"].names == ("embed", "mlp")
  leaves = jax.tree.leaves(boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
  assert all(isinstance(leaf, nn.LogicallyPartitioned) for leaf in leaves)


def test_spatial_softmax_finds_the_peak():
  features = np.zeros((1, 5, 9, 2), np.float32)
  features[0, 1, 6, 0] = 50.0  # row 1 of 5, column 6 of 9
  features[0, 4, 0, 1] = 50.0
  keypoints = jax.jit(spatial_softmax)(jnp.asarray(features), jnp.ones((2,)))
  np.testing.assert_allclose(keypoints[0], [[0.5, -0.5], [-1.0, 1.0]], atol=1e-4)
  # A flat map averages to the centre.
  np.testing.assert_allclose(jax.jit(spatial_softmax)(jnp.zeros((1, 4, 4, 1)), jnp.ones((1,)))[0, 0], [0, 0],
                             atol=1e-6)


def test_normalizer_fits_the_data_and_round_trips():
  rng = np.random.default_rng(3)
  states = rng.normal([0, 0.1, 0, -2.1, 0, 2.2, 0.8, 0.06], 0.2, (200, 8))
  states[:, 2] = 0.5  # a joint that never moves: its std is floored
  actions = np.concatenate([states[:, :7] + rng.normal(0.05, 0.01, (200, 7)), rng.integers(0, 2, (200, 1))], -1)
  norm = fit_normalizer(states, actions, min_std=1e-3)
  state_n = np.asarray(norm.normalize_state(jnp.asarray(states, jnp.float32)))
  np.testing.assert_allclose(np.delete(state_n.mean(0), 2), 0.0, atol=1e-4)
  np.testing.assert_allclose(np.delete(state_n.std(0), 2), 1.0, atol=1e-3)
  assert float(norm.state_std[2]) == pytest.approx(1e-3)
  np.testing.assert_allclose(norm.delta_mean, 0.05, atol=0.005)
  np.testing.assert_allclose(norm.delta_std, 0.01, atol=0.003)

  targets_bk7 = jnp.asarray(actions[:8, None, :7] + rng.normal(0, 0.1, (8, 3, 7)), jnp.float32)
  state_b8 = jnp.asarray(states[:8], jnp.float32)
  for mode in ("delta", "absolute"):
    encoded = norm.encode_joints(targets_bk7, state_b8, mode)
    np.testing.assert_allclose(norm.decode_joints(encoded, state_b8, mode), targets_bk7, atol=1e-5)
  # Delta targets of the fitted data are standardized.
  deltas_n = norm.encode_joints(jnp.asarray(actions[:, None, :7], jnp.float32), jnp.asarray(states, jnp.float32),
                                "delta")
  np.testing.assert_allclose(np.asarray(deltas_n).std(axis=(0, 1)), 1.0, atol=1e-3)

  again = Normalizer.from_dict(norm.as_dict())
  jax.tree.map(np.testing.assert_array_equal, again, norm)
  with pytest.raises(ValueError, match="states"):
    fit_normalizer(states[:, :7], actions)
  with pytest.raises(ValueError, match="actions"):
    fit_normalizer(states, actions[:10])
  with pytest.raises(ValueError, match="delta_std"):
    Normalizer.from_dict({k: v for k, v in norm.as_dict().items() if k != "delta_std"})


def test_action_chunks_pad_with_the_last_action_and_mask_it():
  actions = np.arange(5 * 8, dtype=np.float32).reshape(5, 8)
  chunks, mask = action_chunks(actions, 3)
  assert chunks.shape == (5, 3, 8) and mask.shape == (5, 3)
  np.testing.assert_array_equal(chunks[1], actions[1:4])
  np.testing.assert_array_equal(chunks[4], actions[[4, 4, 4]])
  np.testing.assert_array_equal(mask[3], [True, True, False])
  np.testing.assert_array_equal(mask[:3], True)


def test_masked_chunk_positions_do_not_reach_the_loss(random_params):
  normalizer, batch = NORMALIZER, _batch(4)
  loss_fn = make_policy_loss_fn(MODEL, normalizer)
  mask = np.asarray(batch["action_mask"])
  assert mask.any() and not mask.all()

  @jax.jit
  def loss_and_grad(actions):
    return jax.value_and_grad(lambda a: loss_fn(random_params, dict(batch, actions=a), jax.random.key(0))[0])(actions)

  loss, grad = loss_and_grad(batch["actions"])
  grad = np.asarray(grad)
  np.testing.assert_array_equal(grad[~mask], 0.0)
  assert np.all(np.abs(grad[mask][:, :7]).sum(-1) > 0)
  assert np.all(grad[mask][:, 7] != 0)
  # Whatever the padding holds (even NaN), the loss is the same.
  poisoned = np.asarray(batch["actions"]).copy()
  poisoned[~mask] = np.nan
  poisoned_loss, poisoned_grad = loss_and_grad(jnp.asarray(poisoned))
  assert float(poisoned_loss) == pytest.approx(float(loss), rel=1e-6)
  assert np.all(np.isfinite(np.asarray(poisoned_grad)))
  # With every position masked the loss is zero (no division by zero).
  empty, _ = _LOSS(random_params, dict(batch, action_mask=jnp.zeros_like(batch["action_mask"])),
                              jax.random.key(0))
  assert float(empty) == 0.0


def test_augment_runs_inside_the_loss(random_params):
  normalizer, batch = NORMALIZER, _batch(5)
  plain = _LOSS
  blank = jax.jit(make_policy_loss_fn(MODEL, normalizer, augment=lambda rng, images: jnp.zeros_like(images)))
  identity = jax.jit(make_policy_loss_fn(MODEL, normalizer, augment=make_augment(AugmentSettings.none())))
  key = jax.random.key(0)
  loss = float(plain(random_params, batch, key)[0])
  assert float(identity(random_params, batch, key)[0]) == loss
  zero_images = dict(batch, images=jnp.zeros_like(batch["images"]))
  assert float(blank(random_params, batch, key)[0]) == pytest.approx(float(plain(random_params, zero_images, key)[0]))
  assert float(blank(random_params, batch, key)[0]) != pytest.approx(loss)


def _square_dataset(num=16, size=16, chunk=4, seed=0):
  """Targets set by where a bright square is: camera 0 shows it at (row, col), camera 1 transposed."""
  rng = np.random.default_rng(seed)
  images = np.zeros((num, 2, size, size, 3), np.uint8)
  rows, cols = rng.integers(0, size - 4, num), rng.integers(0, size - 4, num)
  for i, (r, c) in enumerate(zip(rows, cols)):
    images[i, 0, r:r + 4, c:c + 4] = 255
    images[i, 1, c:c + 4, r:r + 4] = (255, 128, 0)
  xy = np.stack([cols, rows], -1) / (size - 4) - 0.5
  state = np.concatenate([rng.normal(0, 0.2, (num, 7)), rng.uniform(0, 0.08, (num, 1))], -1)
  weights = rng.normal(0, 1.0, (2, 7))
  steps = (np.arange(1, chunk + 1) / chunk)[None, :, None]
  joints = state[:, None, :7] + steps * (xy @ weights)[:, None, :]
  gripper = np.broadcast_to((xy[:, :1] > 0)[:, None, :], (num, chunk, 1)).astype(np.float64)
  actions = np.concatenate([joints, gripper], -1)
  return {"images": jnp.asarray(images), "state": jnp.asarray(state, jnp.float32),
          "actions": jnp.asarray(actions, jnp.float32), "action_mask": jnp.ones((num, chunk), bool)}


def test_tiny_policy_overfits_square_positions_with_a_data_parallel_step():
  """Overfits 16 samples with the batch split over 8 devices; the first step's loss is the single-device one."""
  data = _square_dataset()
  normalizer = fit_normalizer(data["state"], data["actions"])
  mesh = make_mesh({"data": -1})
  rules = logical_rules(("data",))
  optimizer = optax.adam(3e-3)
  with jax.set_mesh(mesh), axis_rules(rules):
    variables, _ = init_sharded(MODEL.init, jax.random.key(2), *dummy_inputs(CONFIG), mesh=mesh, rules=rules)
    state = TrainState.create(variables["params"], optimizer)
    state_shardings = jax.tree.map(lambda x: x.sharding, state)
    shardings = jax.tree.map(lambda x: batch_sharding(mesh, rules, x.ndim), data)
    step = make_policy_train_step(MODEL, optimizer, normalizer, state_shardings=state_shardings,
                                  batch_shardings=shardings)
    sharded = jax.device_put(data, shardings)
    assert len(sharded["images"].sharding.device_set) == 8
    single_device = jax.jit(make_policy_loss_fn(MODEL, normalizer))(jax.device_get(state.params), data,
                                                                    jax.random.key(0))[1]
    losses, errors = [], []
    for _ in range(50):
      state, metrics = step(state, sharded, jax.random.key(0))
      losses.append(float(metrics["loss"]))
      errors.append(float(metrics["joint_abs_error"]))
  assert losses[0] == pytest.approx(float(single_device["joint_loss"] + single_device["gripper_bce"]), rel=1e-5)
  assert int(state.step) == 50 and int(state.nonfinite_steps) == 0
  assert np.mean(losses[-5:]) < 0.1 * losses[0], losses[::10]
  assert np.mean(errors[-5:]) < 0.15 * errors[0], errors[::10]
  assert float(metrics["gripper_accuracy"]) == 1.0


def test_runner_replans_on_schedule_and_binarizes_the_gripper(random_params):
  normalizer = NORMALIZER
  runner = PolicyRunner(MODEL, random_params, normalizer, ["front", "side"], execute_steps=3)
  obs = [_batch(10 + t, batch_size=1) for t in range(7)]
  actions = []
  for o in obs:
    images = {"front": np.asarray(o["images"][0, 0]), "side": np.asarray(o["images"][0, 1])}
    actions.append(runner(images, np.asarray(o["state"][0])))
  assert runner.num_plans == 3  # at steps 0, 3 and 6
  for t, action in enumerate(actions):
    planned_at = 3 * (t // 3)
    chunk = np.asarray(_apply(random_params, normalizer, obs[planned_at]["images"], obs[planned_at]["state"]))[0]
    np.testing.assert_allclose(action[:7], chunk[t - planned_at, :7], atol=1e-5)
    assert action[7] == (1.0 if chunk[t - planned_at, 7] > 0 else 0.0)
  assert {a[7] for a in actions} == {0.0, 1.0}  # both commands occur with these random parameters
  runner.reset()
  runner(images, np.asarray(obs[-1]["state"][0]))
  assert runner.num_plans == 4
  with pytest.raises(KeyError, match="side"):
    runner({"front": images["front"]}, np.zeros(8))
  with pytest.raises(ValueError, match="execute_steps"):
    PolicyRunner(MODEL, random_params, normalizer, ["front", "side"], execute_steps=CONFIG.chunk + 1)


OBJECT_MODEL = VisuomotorPolicy(dataclasses.replace(CONFIG, object_head=True))


def test_object_head_reads_images_only_and_a_policy_without_it_refuses():
  params = init_policy_params(OBJECT_MODEL, jax.random.key(3))
  batch = _batch(20)
  apply = jax.jit(lambda p, images, state: OBJECT_MODEL.apply({"params": p}, images, state, NORMALIZER,
                                                               with_object=True))
  actions, object_b2 = apply(params, batch["images"], batch["state"])
  assert actions.shape == (8, CONFIG.chunk, 8) and object_b2.shape == (8, 2)
  _, moved_state = apply(params, batch["images"], batch["state"] + 1.0)
  np.testing.assert_array_equal(object_b2, moved_state)
  _, other_images = apply(params, _batch(21)["images"], batch["state"])
  assert np.abs(np.asarray(other_images) - np.asarray(object_b2)).max() > 1e-4
  with pytest.raises(ValueError, match="object_head=True"):
    MODEL.apply({"params": init_policy_params(MODEL, jax.random.key(0))}, batch["images"], batch["state"],
                NORMALIZER, with_object=True)


def test_object_loss_learns_the_square_position_and_ignores_masked_samples():
  data = _square_dataset()
  # The square's centre (x = column, y = row) as a fraction of the image, as metadata would give it.
  square = np.asarray(data["images"][:, 0, :, :, 0]) > 0
  centers = np.stack([np.argwhere(s).mean(0)[::-1] for s in square]) / 16
  mask = np.ones(16, bool)
  mask[:3] = False
  object_xy = np.where(mask[:, None], centers, np.nan)  # masked targets may hold anything
  data = dict(data, object_xy=jnp.asarray(object_xy, jnp.float32), object_mask=jnp.asarray(mask))
  stats = ObjectStats.fit(centers[mask])
  normalizer = fit_normalizer(data["state"], data["actions"])
  optimizer = optax.adam(3e-3)
  state = TrainState.create(init_policy_params(OBJECT_MODEL, jax.random.key(4)), optimizer)
  step = make_policy_train_step(OBJECT_MODEL, optimizer, normalizer, object_weight=1.0, object_stats=stats,
                                donate=False)
  errors = []
  for _ in range(60):
    state, metrics = step(state, data, jax.random.key(0))
    errors.append(float(metrics["object_error"]))
  assert np.isfinite(float(metrics["loss"])) and int(state.nonfinite_steps) == 0
  assert np.mean(errors[-5:]) < 0.3 * errors[0], errors[::10]
  with pytest.raises(ValueError, match="object_head=True and object_stats"):
    make_policy_loss_fn(MODEL, normalizer, object_weight=1.0, object_stats=stats)(
        init_policy_params(MODEL, jax.random.key(0)), data, jax.random.key(0))


def test_state_noise_moves_the_arm_joints_only_and_is_off_by_default(random_params):
  batch = _batch(30)
  key = jax.random.key(1)
  noisy = jax.jit(make_policy_loss_fn(MODEL, NORMALIZER, state_noise=0.5))
  assert float(noisy(random_params, batch, key)[0]) == float(noisy(random_params, batch, key)[0])
  assert float(noisy(random_params, batch, key)[0]) != pytest.approx(float(_LOSS(random_params, batch, key)[0]))
  seen = []
  spy = VisuomotorPolicy(CONFIG)
  original = VisuomotorPolicy.__call__

  def record(self, images, state, normalizer, **kwargs):
    seen.append(state)
    return original(self, images, state, normalizer, **kwargs)

  VisuomotorPolicy.__call__ = record
  try:
    make_policy_loss_fn(spy, NORMALIZER, state_noise=0.5)(random_params, batch, key)
  finally:
    VisuomotorPolicy.__call__ = original
  moved = np.asarray(seen[0]) - np.asarray(batch["state"])
  assert np.abs(moved[:, :7]).min() > 0 and np.all(moved[:, 7] == 0)
  with pytest.raises(ValueError, match="state_noise must be >= 0"):
    make_policy_loss_fn(MODEL, NORMALIZER, state_noise=-1.0)

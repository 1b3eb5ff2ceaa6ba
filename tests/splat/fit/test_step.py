"""The fit step end to end: a short fit whose loss falls and PSNR rises, densification and
opacity reset inside one compiled step (no recompilation), the SH schedule, non-finite
steps skipped and counted, evaluation, and data parallelism over cameras."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.sharding import make_mesh
from jaxlab.splat.fit import FitSettings, evaluate, fit_step_fn, init_fit_state, make_fit_step, scene_extent_from_cameras
from tests.splat.fit.tiny_scene import BACKGROUND, CAPACITY, HEIGHT, WIDTH

NUM_STEPS = 100
# Schedules in 3DGS iterations (step index + 1), shrunk to fit 100 steps. No opacity reset
# within them: with 3DGS's opacity lr, recovering from one takes a few hundred steps.
SETTINGS = FitSettings(
    densify_from=30, densify_every=20, densify_until=2000, opacity_reset_every=1000, sh_increase_every=40,
    background=BACKGROUND)
DENSIFY_ITERATIONS = (40, 60, 80, 100)  # from < i < until and i % every == 0
VIEW_BATCHES = (jnp.asarray([0, 2]), jnp.asarray([1, 3]))


@pytest.fixture(scope="module")
def fit(tiny_scene):
  """100 steps on batches of 2 of the 4 views, alternating, from the unrelated initial scene."""
  traces = []
  raw_step = fit_step_fn(
      SETTINGS, width=WIDTH, height=HEIGHT, capacity=CAPACITY, scene_extent=scene_extent_from_cameras(tiny_scene["cameras"]))

  def counted_step(state, batch, rng):
    traces.append(1)  # runs only while tracing
    return raw_step(state, batch, rng)

  step = jax.jit(counted_step)
  batches = [{"camera": tiny_scene["cameras"][views], "image": tiny_scene["images"][views]} for views in VIEW_BATCHES]
  rng = jax.random.key(7)
  states = [init_fit_state(tiny_scene["init"], SETTINGS)]
  metrics = []
  for i in range(NUM_STEPS):
    state, m = step(states[-1], batches[i % 2], rng)
    states.append(state)
    metrics.append(m)
  metrics = {k: np.asarray([m[k] for m in jax.device_get(metrics)]) for k in metrics[0]}
  return {"step": step, "traces": traces, "states": states, "metrics": metrics, "batch": batches[0], "batches": batches, "rng": rng}


def _evaluate(gaussians, scene, **kw):
  return jax.device_get(evaluate(gaussians, scene["cameras"], scene["images"], capacity=CAPACITY, background=BACKGROUND, **kw))


def test_short_fit_loss_falls_and_psnr_rises(fit, tiny_scene):
  loss = fit["metrics"]["loss"]
  assert np.all(np.isfinite(loss))
  assert loss[-10:].mean() < 0.8 * loss[:10].mean(), (loss[:10], loss[-10:])
  before = _evaluate(fit["states"][0].params, tiny_scene)
  after = _evaluate(fit["states"][-1].params, tiny_scene)
  assert after["psnr"] > before["psnr"] + 2.0, (before, after)
  assert after["ssim"] > before["ssim"] and after["l1"] < before["l1"]
  assert not fit["metrics"]["overflow"].any()
  assert not fit["metrics"]["nonfinite"].any()


def test_densification_happens_inside_one_compiled_step(fit):
  m = fit["metrics"]
  iterations = np.arange(1, NUM_STEPS + 1)
  np.testing.assert_array_equal(iterations[m["densified"] == 1], DENSIFY_ITERATIONS)
  assert m["num_cloned"].sum() + m["num_split"].sum() > 0
  changed = np.flatnonzero(np.diff(np.concatenate([[100], m["num_active"]])) != 0) + 1
  assert set(changed) <= set(DENSIFY_ITERATIONS) and len(changed) > 0
  grown = m["num_active"][-1] - 100
  assert grown == m["num_cloned"].sum() + m["num_split"].sum() - m["num_pruned"].sum()
  np.testing.assert_array_equal(m["capacity_exhausted_total"], np.cumsum(m["capacity_exhausted"]))
  # One trace and one compiled program for all 100 steps, densification steps included.
  assert len(fit["traces"]) == 1
  assert fit["step"]._cache_size() == 1


def test_schedules_inside_the_step(fit, tiny_scene):
  m = fit["metrics"]
  iterations = np.arange(1, NUM_STEPS + 1)
  np.testing.assert_array_equal(m["sh_degree"], np.minimum(iterations // 40, 1))
  init, states = tiny_scene["init"], fit["states"]
  # Degree 0 until iteration 40: the higher band is frozen (no gradient, no update).
  np.testing.assert_array_equal(states[39].params.sh[:, 1:], init.sh[:, 1:])
  assert not np.array_equal(states[45].params.sh[:, 1:], init.sh[:, 1:])
  assert not np.array_equal(states[39].params.sh[:, :1], init.sh[:, :1])
  # Inactive slots are untouched until densification first fills some.
  inactive = ~np.asarray(init.active)
  for name in ("means", "log_scales", "quats", "opacity_logits", "sh", "active"):
    np.testing.assert_array_equal(np.asarray(getattr(states[39].params, name))[inactive], np.asarray(getattr(init, name))[inactive])


def test_opacity_reset_inside_the_step(fit):
  """From step 999 the next iteration is 1000: opacity reset (and densification) in the same program."""
  state = fit["states"][-1]
  state = state.replace(step=jnp.asarray(999, jnp.int32))
  reset, m = fit["step"](state, fit["batch"], fit["rng"])
  assert int(m["densified"]) == 1
  active = np.asarray(reset.params.active)
  assert np.asarray(state.params.opacities())[np.asarray(state.params.active)].max() > 0.05
  assert np.asarray(reset.params.opacities())[active].max() <= 0.01 + 1e-6
  adam = reset.opt_state.inner_states["opacity_logits"].inner_state[0]
  assert not np.any(np.asarray(adam.mu["opacity_logits"])) and not np.any(np.asarray(adam.nu["opacity_logits"]))
  assert len(fit["traces"]) == 1


def test_nonfinite_step_is_skipped_and_counted(fit):
  state = fit["states"][5]
  bad_batch = dict(fit["batch"], image=fit["batch"]["image"].at[0, 3, 3, 0].set(jnp.nan))
  skipped, m = fit["step"](state, bad_batch, fit["rng"])
  assert int(m["nonfinite"]) == 1 and int(m["nonfinite_streak"]) == 1
  assert (int(skipped.step), int(skipped.nonfinite_steps), int(skipped.nonfinite_streak)) == (6, 1, 1)
  same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  assert same(skipped.params, state.params) and same(skipped.opt_state, state.opt_state)
  assert same((skipped.grad_accum, skipped.grad_count, skipped.max_radii), (state.grad_accum, state.grad_count, state.max_radii))
  again, m = fit["step"](skipped, bad_batch, fit["rng"])
  assert int(m["nonfinite_streak"]) == 2 and int(again.nonfinite_steps) == 2
  recovered, m = fit["step"](again, fit["batch"], fit["rng"])
  assert int(m["nonfinite"]) == 0 and int(recovered.nonfinite_streak) == 0 and int(recovered.nonfinite_steps) == 2
  assert not same(recovered.params, state.params)
  assert len(fit["traces"]) == 1


def test_evaluate_scores(fit, tiny_scene):
  # Padded to the fit's buffer size: the same compiled evaluation serves every call here.
  perfect = _evaluate(tiny_scene["truth"].pad_to(tiny_scene["init"].num), tiny_scene)
  assert perfect["psnr"] > 100 and perfect["ssim"] == pytest.approx(1.0, abs=1e-6) and perfect["l1"] < 1e-6
  # The first step's metrics (SH degree 0 in use) on both view batches, from another code path.
  init_state = fit["states"][0]
  _, other_half = fit["step"](init_state, fit["batches"][1], fit["rng"])
  first = _evaluate(init_state.params, tiny_scene, sh_degree=0)
  assert first["psnr"] == pytest.approx((fit["metrics"]["psnr"][0] + float(other_half["psnr"])) / 2, abs=1e-4)
  assert first["ssim"] == pytest.approx((fit["metrics"]["ssim"][0] + float(other_half["ssim"])) / 2, abs=1e-5)
  with pytest.raises(ValueError, match="sh_degree"):
    _evaluate(tiny_scene["init"], tiny_scene, sh_degree=2)


def test_data_parallel_over_cameras_matches_one_device(fit, tiny_scene):
  # All 8 devices: the 2 views split over "data", everything replicated over "fsdp".
  mesh = make_mesh({"data": 2, "fsdp": -1})
  step = make_fit_step(
      SETTINGS, width=WIDTH, height=HEIGHT, capacity=CAPACITY,
      scene_extent=scene_extent_from_cameras(tiny_scene["cameras"]), mesh=mesh, donate=False)
  state, m = step(fit["states"][0], fit["batch"], fit["rng"])
  assert state.params.means.sharding.is_fully_replicated and len(state.params.means.sharding.device_set) == 8
  assert m["loss"] == pytest.approx(fit["metrics"]["loss"][0], rel=1e-5)
  for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(fit["states"][1])):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_step_rejects_mismatched_batch(fit, tiny_scene):
  step = fit_step_fn(SETTINGS, width=WIDTH + 1, height=HEIGHT, capacity=CAPACITY, scene_extent=1.0)
  with pytest.raises(ValueError, match="built for"):
    step(fit["states"][0], fit["batch"], fit["rng"])
  with pytest.raises(ValueError, match="max_sh_degree"):
    init_fit_state(tiny_scene["init"], FitSettings(max_sh_degree=2))

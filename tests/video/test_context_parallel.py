"""Frames split over a "context" mesh axis: the denoiser's temporal attention runs as ring attention
and its output and parameter gradients equal one device's.

One jitted step (loss, output and gradients together) is compiled once on one device and once on
the mesh; the model is one block deep so that the two compiles stay small, with every condition on.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab import _compat
from jaxlab.sharding import axis_rules, logical_rules, make_mesh
from jaxlab.video.model import VideoCondition, VideoDenoiser, VideoDenoiserConfig, example_inputs

CONFIG = VideoDenoiserConfig(image_size=8, num_frames=4, patch_size=4, width=16, depth=1, num_heads=2,
                             num_identities=3)
B, F, H, W = 2, 4, 8, 8


def _inputs(seed):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((B, F, H, W, 3)).astype(np.float32)
  sigma = rng.uniform(0.1, 0.9, B).astype(np.float32)
  cond = VideoCondition(
      reference_bhwc=rng.uniform(-1, 1, (B, H, W, 3)).astype(np.float32),
      pose_bfhwc=rng.uniform(0, 1, (B, F, H, W, 3)).astype(np.float32),
      plucker_bfhw6=rng.standard_normal((B, F, H, W, 6)).astype(np.float32),
      identity_bfhw=rng.integers(0, CONFIG.num_identities + 1, (B, F, H, W)).astype(np.int32))
  target = rng.standard_normal((B, F, H, W, 3)).astype(np.float32)
  return x, sigma, cond, target


def _loss(params, x, sigma, cond, target):
  v = VideoDenoiser(CONFIG).apply({"params": params}, x, sigma, cond)
  return jnp.mean((v - target) ** 2), v


_STEP = jax.jit(jax.value_and_grad(_loss, has_aux=True))


@pytest.fixture(scope="module")
def initial_params():
  model = VideoDenoiser(CONFIG)
  return jax.device_get(jax.jit(model.init)(jax.random.key(0), *example_inputs(CONFIG, B))["params"])


def test_forward_and_gradients_with_frames_split_over_context_match_one_device(initial_params):
  # The model starts at exactly zero (adaLN-Zero, zero output layers) ...
  init = nn.unbox(initial_params)
  x, sigma, cond, target = _inputs(0)
  (_, v0), _ = _STEP(init, x, sigma, cond, target)
  np.testing.assert_array_equal(v0, 0.0)

  # ... so compare with every parameter drawn at random.
  rng = np.random.default_rng(1)
  params = jax.tree.map(lambda a: (0.3 * rng.standard_normal(a.shape)).astype(np.float32), init)
  (loss, want_v), want_grads = _STEP(params, x, sigma, cond, target)
  assert float(jnp.std(want_v)) > 0.1

  mesh = make_mesh({"data": 2, "context": 4})
  with axis_rules(logical_rules(("data", "context"))), _compat.set_mesh(mesh):
    compiled = _STEP.lower(params, x, sigma, cond, target).compile()
    (got_loss, got_v), got_grads = compiled(params, x, sigma, cond, target)
  # The ring ran: key/value chunks of frames were passed between the 4 context devices.
  assert "collective-permute" in compiled.as_text()
  assert len(got_v.sharding.device_set) == 8

  np.testing.assert_allclose(np.asarray(got_v), np.asarray(want_v), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(float(got_loss), float(loss), rtol=1e-5)
  flat_want = jax.tree_util.tree_leaves_with_path(want_grads)
  flat_got = jax.tree.leaves(got_grads)
  assert len(flat_got) == len(flat_want)
  for (path, want), got in zip(flat_want, flat_got):
    want, got = np.asarray(want), np.asarray(got)
    scale = float(np.max(np.abs(want)))
    assert scale > 0, jax.tree_util.keystr(path)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale, err_msg=jax.tree_util.keystr(path))


def test_frames_not_divisible_by_the_context_axis_are_rejected(initial_params):
  params = nn.unbox(initial_params)
  x, sigma, cond, target = _inputs(2)
  cut = lambda a: a[:, :3]
  cond = cond._replace(pose_bfhwc=cut(cond.pose_bfhwc), plucker_bfhw6=cut(cond.plucker_bfhw6),
                       identity_bfhw=cut(cond.identity_bfhw))
  mesh = make_mesh({"data": 2, "context": 4})
  with axis_rules(logical_rules(("data", "context"))), _compat.set_mesh(mesh), pytest.raises(
      ValueError, match=r"T=3 and S=3 must both be divisible by the size 4"):
    jax.eval_shape(_loss, params, cut(x), sigma, cond, cut(target))

"""DiT: shapes at any patch multiple, adaLN-Zero start, batch independence, high-resolution knobs."""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.flow.dit import DiT, DiTConfig, softmax_scale

CONFIG = DiTConfig(image_size=16, patch_size=4, width=32, depth=2, num_heads=2, num_classes=3)


def _images(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


@pytest.fixture(scope="module")
def init_params():
  init = jax.jit(DiT(CONFIG).init)
  return nn.unbox(init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)), jnp.zeros((1,)))["params"])


@pytest.fixture(scope="module")
def random_params(init_params):
  """Every parameter drawn at random, so no zero-initialised layer hides the rest of the model."""
  rng = np.random.default_rng(1)
  return jax.tree.map(lambda leaf: jnp.asarray(0.3 * rng.standard_normal(leaf.shape), leaf.dtype), init_params)


@jax.jit
def _grad_final_proj(params, x, sigma, labels, target):
  loss = lambda p: jnp.sum((DiT(CONFIG).apply({"params": p}, x, sigma, labels) - target) ** 2)
  return jax.grad(loss)(params)["final_proj"]


@functools.partial(jax.jit, static_argnames=("ntk_factor", "proportional_attention"))
def _apply(params, x, sigma, labels=None, *, ntk_factor=1.0, proportional_attention=False):
  # Compiled: op-by-op dispatch of the whole model is far slower on CPU than one compile.
  return DiT(CONFIG).apply({"params": params}, x, sigma, labels, ntk_factor=ntk_factor,
                           proportional_attention=proportional_attention)


def _apply_eager(params, x, sigma, labels=None, **kwargs):
  """Uncompiled, so that checks on concrete label values run; for argument errors only."""
  return DiT(CONFIG).apply({"params": params}, x, sigma, labels, **kwargs)


@pytest.mark.parametrize("height,width", [(16, 16), (32, 32), (16, 24)])
def test_output_matches_input_shape_at_training_and_higher_resolution(random_params, height, width):
  x = _images(0, (2, height, width, 3))
  v = _apply(random_params, x, jnp.array([0.2, 0.9]), jnp.array([0, 2]))
  assert v.shape == x.shape and v.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(v))) and float(jnp.std(v)) > 0


def test_parameters_carry_logical_axes():
  init = DiT(CONFIG).init
  boxed = jax.eval_shape(init, jax.random.key(0), jnp.zeros((1, 16, 16, 3)), jnp.zeros((1,)))["params"]
  attention = boxed["block_0"]["attention"]
  assert attention["wq"].names == ("embed", "heads", "head_dim")
  assert attention["wo"].names == ("heads", "head_dim", "embed")
  assert boxed["block_0"]["mlp"]["fc_in"]["kernel"].names == ("embed", "mlp")
  assert boxed["label_embed"].value.shape == (CONFIG.num_classes + 1, CONFIG.width)
  leaves = jax.tree.leaves(boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
  assert all(isinstance(leaf, nn.LogicallyPartitioned) for leaf in leaves)


def test_adaln_zero_starts_at_zero_but_trains_the_final_layer(init_params):
  x = _images(1, (2, 16, 16, 3))
  sigma, labels = jnp.array([0.3, 0.7]), jnp.array([1, 3])
  np.testing.assert_array_equal(_apply(init_params, x, sigma, labels), 0.0)

  grads = _grad_final_proj(init_params, x, sigma, labels, _images(2, x.shape))
  assert float(jnp.max(jnp.abs(grads["kernel"]))) > 1e-3
  assert float(jnp.max(jnp.abs(grads["bias"]))) > 1e-3


def test_patches_map_back_to_where_they_came_from(init_params):
  # At init every block is the identity (zero gates), so with random patch embedding and output
  # projection each output patch is a function of the same input patch only.
  rng = np.random.default_rng(7)
  params = dict(init_params)
  for name in ("patch_embed", "final_proj"):
    params[name] = jax.tree.map(lambda a: jnp.asarray(rng.standard_normal(a.shape), a.dtype), params[name])
  x = _images(8, (2, 16, 24, 3))
  sigma, labels = jnp.array([0.5, 0.5]), jnp.array([0, 0])
  bumped = x.at[0, 5, 9, 1].add(3.0)  # patch row 1, patch column 2
  changed = np.abs(np.asarray(_apply(params, bumped, sigma, labels) - _apply(params, x, sigma, labels))) > 1e-6
  expected = np.zeros(x.shape, bool)
  expected[0, 4:8, 8:12, :] = True
  np.testing.assert_array_equal(changed.any(-1), expected.any(-1))


def test_each_output_depends_only_on_its_own_example(random_params):
  x = _images(3, (3, 16, 16, 3))
  sigma, labels = jnp.array([0.1, 0.5, 0.9]), jnp.array([0, 1, 2])
  pair = _apply(random_params, x[:2], sigma[:2], labels[:2])
  # Replacing the second example leaves the first output alone; swapping the two swaps the outputs.
  other = _apply(random_params, x[::2], sigma[::2], labels[::2])
  np.testing.assert_allclose(other[0], pair[0], rtol=1e-4, atol=1e-5)
  swapped = _apply(random_params, x[1::-1], sigma[1::-1], labels[1::-1])
  np.testing.assert_allclose(swapped[::-1], pair, rtol=1e-4, atol=1e-5)
  # The examples do differ, so the comparisons above are not trivially met.
  assert not np.allclose(pair[0], pair[1], atol=1e-3)
  assert not np.allclose(other[1], pair[1], atol=1e-3)


def test_conditioning_on_sigma_and_label(random_params):
  x = jnp.broadcast_to(_images(4, (1, 16, 16, 3)), (2, 16, 16, 3))
  by_sigma = _apply(random_params, x, jnp.array([0.1, 0.8]), jnp.array([0, 0]))
  assert not np.allclose(by_sigma[0], by_sigma[1], atol=1e-3)
  by_label = _apply(random_params, x, jnp.array([0.4, 0.4]), jnp.array([0, 2]))
  assert not np.allclose(by_label[0], by_label[1], atol=1e-3)
  # No labels means the null class, index num_classes.
  null = jnp.full((2,), CONFIG.num_classes)
  np.testing.assert_allclose(_apply(random_params, x, jnp.array([0.4, 0.4])),
                             _apply(random_params, x, jnp.array([0.4, 0.4]), null), rtol=1e-6)


def test_high_resolution_knobs_are_neutral_at_training_size(random_params):
  x, sigma, labels = _images(5, (2, 16, 16, 3)), jnp.array([0.3, 0.6]), jnp.array([2, 0])
  default = _apply(random_params, x, sigma, labels)
  np.testing.assert_array_equal(_apply(random_params, x, sigma, labels, ntk_factor=1.0), default)
  np.testing.assert_allclose(_apply(random_params, x, sigma, labels, proportional_attention=True), default,
                             rtol=1e-5, atol=1e-6)


def test_high_resolution_knobs_change_the_output_above_training_size(random_params):
  x, sigma, labels = _images(6, (2, 32, 32, 3)), jnp.array([0.5, 0.2]), jnp.array([1, 3])
  default = _apply(random_params, x, sigma, labels)
  assert not np.allclose(_apply(random_params, x, sigma, labels, ntk_factor=4.0), default, atol=1e-4)
  assert not np.allclose(_apply(random_params, x, sigma, labels, proportional_attention=True), default, atol=1e-4)


def test_softmax_scale_formula():
  assert softmax_scale(16, 64, 16, proportional=False) == pytest.approx(0.25)
  assert softmax_scale(16, 16, 16, proportional=True) == pytest.approx(0.25)
  assert softmax_scale(16, 64, 16, proportional=True) == pytest.approx(0.25 * math.sqrt(math.log(64) / math.log(16)))
  with pytest.raises(ValueError, match="train_tokens"):
    softmax_scale(16, 4, 1, proportional=True)


def test_train_tokens_and_head_dim():
  assert CONFIG.train_tokens() == 16
  assert CONFIG.head_dim == 16


@pytest.mark.parametrize("height,width", [(16, 18), (10, 16)])
def test_sizes_off_the_patch_grid_are_rejected(init_params, height, width):
  with pytest.raises(ValueError, match=f"height {height} and width {width}.*patch_size 4"):
    _apply_eager(init_params, jnp.zeros((1, height, width, 3)), jnp.zeros((1,)))


def test_bad_call_arguments_are_rejected(init_params):
  x = jnp.zeros((2, 16, 16, 3))
  with pytest.raises(ValueError, match="sigma_b"):
    _apply_eager(init_params, x, jnp.zeros((3,)))
  with pytest.raises(ValueError, match=r"labels_b must lie in \[0, 3\]"):
    _apply_eager(init_params, x, jnp.zeros((2,)), jnp.array([0, 4]))
  with pytest.raises(ValueError, match="labels_b must be an int"):
    _apply_eager(init_params, x, jnp.zeros((2,)), jnp.zeros((2,)))
  with pytest.raises(ValueError, match="ntk_factor"):
    _apply_eager(init_params, x, jnp.zeros((2,)), ntk_factor=0.0)
  with pytest.raises(ValueError, match="x_bhwc"):
    _apply_eager(init_params, jnp.zeros((2, 16, 16, 4)), jnp.zeros((2,)))


def test_unconditional_model_has_no_label_table_and_rejects_labels():
  config = DiTConfig(image_size=8, patch_size=4, width=32, depth=1, num_heads=2)
  model = DiT(config)
  x, sigma = jnp.zeros((1, 8, 8, 3)), jnp.zeros((1,))
  params = jax.eval_shape(model.init, jax.random.key(0), x, sigma)["params"]
  assert "label_embed" not in params
  with pytest.raises(ValueError, match="unconditional"):
    model.apply({"params": params}, x, sigma, jnp.zeros((1,), jnp.int32))


@pytest.mark.parametrize("fields,match", [
    (dict(width=30, num_heads=4), "not divisible by num_heads"),
    (dict(width=24, num_heads=4), "divisible by 4"),
    (dict(image_size=18), "image_size 18 is not divisible by patch_size 4"),
    (dict(num_classes=-1), "num_classes"),
    (dict(depth=0), "depth"),
    (dict(rope_theta=0.0), "rope_theta"),
    (dict(mlp_ratio=0.0), "mlp_ratio"),
    (dict(dtype="int32"), "floating dtype"),
])
def test_config_validation(fields, match):
  base = dict(image_size=16, patch_size=4, width=32, depth=2, num_heads=2)
  with pytest.raises(ValueError, match=match):
    DiTConfig(**{**base, **fields})

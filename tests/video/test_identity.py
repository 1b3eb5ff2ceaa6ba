"""Identity embeddings: the painted map follows the masks, bad labels fail, the zero conv starts at zero
and then acts per frame as a 3x3 convolution."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.video.identity import IdentityEmbedding, paint_identity_map

N, C = 3, 5


def _labels(seed, shape=(2, 3, 6, 7), high=N):
  return np.random.default_rng(seed).integers(0, high + 1, size=shape).astype(np.int32)


def _table(seed, n=N, c=C):
  return np.random.default_rng(seed).standard_normal((n, c)).astype(np.float32)


def test_painted_map_is_the_identity_vector_on_its_mask_and_zero_elsewhere():
  labels, table = _labels(0), _table(1)
  painted = np.asarray(paint_identity_map(jnp.asarray(labels), jnp.asarray(table)))
  assert painted.shape == labels.shape + (C,)
  assert set(np.unique(labels)) == {0, 1, 2, 3}  # every label occurs, so every case is checked
  for label in range(N + 1):
    where = labels == label
    want = np.zeros(C, np.float32) if label == 0 else table[label - 1]
    np.testing.assert_array_equal(painted[where], np.broadcast_to(want, (int(where.sum()), C)))


@pytest.mark.parametrize("bad,match", [
    (N + 1, rf"max label {N + 1}.*N = {N}|N = {N}.*max label {N + 1}"),
    (-1, r"min label -1"),
])
def test_labels_outside_zero_to_n_are_rejected(bad, match):
  labels = _labels(2)
  labels[1, 2, 3, 4] = bad
  with pytest.raises(ValueError, match=match):
    paint_identity_map(labels, _table(3))


def test_bad_argument_types_are_rejected():
  with pytest.raises(ValueError, match="integers"):
    paint_identity_map(np.zeros((1, 2, 2), np.float32), _table(0))
  with pytest.raises(ValueError, match=r"table_nc must be \[num_identities, channels\]"):
    paint_identity_map(_labels(0), np.zeros((N,), np.float32))


def test_traced_labels_are_not_checked_and_out_of_range_ones_show_as_nan():
  labels = _labels(4, shape=(1, 2, 3, 3))
  labels[0, 0, 0, 0], labels[0, 1, 2, 2] = N + 2, -1
  painted = np.asarray(jax.jit(paint_identity_map)(labels, _table(5)))
  assert np.all(np.isnan(painted[0, 0, 0, 0])) and np.all(np.isnan(painted[0, 1, 2, 2]))
  valid = (labels >= 0) & (labels <= N)
  assert np.all(np.isfinite(painted[valid]))


def _init(module, labels):
  return module.init(jax.random.key(0), jnp.asarray(labels))["params"]


def test_embedding_starts_as_exact_zero_with_a_unit_scale_table():
  module = IdentityEmbedding(N, 64, out_channels=4)
  labels = _labels(6)
  boxed = _init(module, labels)
  leaves = jax.tree.leaves(boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
  assert all(isinstance(leaf, nn.LogicallyPartitioned) for leaf in leaves)
  params = nn.unbox(boxed)
  assert params["table"].shape == (N, 64)
  assert params["zero_conv"]["conv"]["kernel"].shape == (3, 3, 64, 4)
  np.testing.assert_array_equal(params["zero_conv"]["conv"]["kernel"], 0.0)
  np.testing.assert_array_equal(params["zero_conv"]["conv"]["bias"], 0.0)
  assert 0.8 < float(jnp.std(params["table"])) < 1.2
  out = module.apply({"params": params}, labels)
  assert out.shape == labels.shape + (4,)
  np.testing.assert_array_equal(out, 0.0)


def test_one_zero_conv_per_named_output_over_one_shared_table():
  module = IdentityEmbedding(N, C, out_channels={"rgb": 3, "depth": 1})
  labels = _labels(7)
  params = nn.unbox(_init(module, labels))
  assert set(params) == {"table", "zero_conv_rgb", "zero_conv_depth"}
  assert params["zero_conv_depth"]["conv"]["kernel"].shape == (3, 3, C, 1)
  out = module.apply({"params": params}, labels)
  assert set(out) == {"rgb", "depth"}
  assert out["rgb"].shape == labels.shape + (3,) and out["depth"].shape == labels.shape + (1,)


def test_perturbed_zero_conv_is_a_per_frame_3x3_convolution_of_the_painted_map():
  module = IdentityEmbedding(N, C, out_channels=2)
  labels = _labels(8)
  params = nn.unbox(_init(module, labels))
  rng = np.random.default_rng(9)
  # Only the centre tap: the output is painted @ W + b, pixel by pixel.
  w_cd = rng.standard_normal((C, 2)).astype(np.float32)
  bias = rng.standard_normal(2).astype(np.float32)
  kernel = np.zeros((3, 3, C, 2), np.float32)
  kernel[1, 1] = w_cd
  centre = {"table": params["table"], "zero_conv": {"conv": {"kernel": kernel, "bias": bias}}}
  painted = np.asarray(paint_identity_map(labels, params["table"]))
  np.testing.assert_allclose(module.apply({"params": centre}, labels), painted @ w_cd + bias, rtol=1e-5, atol=1e-5)

  # A full random kernel: changing one pixel's label moves the outputs of its 3x3 neighbourhood in
  # that frame only.
  full = {"table": params["table"], "zero_conv": {"conv": {"kernel": rng.standard_normal((3, 3, C, 2)), "bias": bias}}}
  apply = jax.jit(lambda p, labels: module.apply({"params": p}, labels))
  bumped = labels.copy()
  bumped[1, 2, 3, 4] = (labels[1, 2, 3, 4] % N) + 1  # another identity
  changed = np.abs(np.asarray(apply(full, bumped) - apply(full, labels))).max(-1) > 1e-6
  expected = np.zeros(labels.shape, bool)
  expected[1, 2, 2:5, 3:6] = True
  np.testing.assert_array_equal(changed, expected)

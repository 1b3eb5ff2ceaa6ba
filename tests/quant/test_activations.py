"""Tests for `jaxlab.quant.activations`: dynamic symmetric quantization per token or per 128 columns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.quant import activations


def _numpy_quantize(x_mk, bits, group_size):
  """(q [M, K] int, scale [M, G]) one group at a time, as the spec states it."""
  m, k = x_mk.shape
  width = k if group_size == -1 else group_size
  q_max = 2 ** (bits - 1) - 1
  q = np.zeros((m, k), np.int64)
  scale = np.zeros((m, k // width), np.float32)
  for row in range(m):
    for g in range(k // width):
      block = x_mk[row, g * width:(g + 1) * width].astype(np.float32)
      amax = np.abs(block).max()
      s = np.float32(amax / np.float32(q_max)) if amax > 0 else np.float32(1)
      scale[row, g] = s
      q[row, g * width:(g + 1) * width] = np.clip(np.round(block / s), -q_max, q_max)
  return q, scale


def _inputs(m=6, k=256, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(m, k)) * rng.uniform(0.01, 5.0, size=(m, 1))
  x[:, 128:] *= 8.0  # The second 128 columns are wider: per-group scales differ from per-token ones.
  x[2] = 0.0  # A zero row.
  return x.astype(np.float32)


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("group_size", [-1, 128])
def test_matches_spec_and_error_bound(bits, group_size):
  x = _inputs(seed=bits)
  q, scale = activations.quantize_activations(jnp.asarray(x), bits, group_size)
  groups = 1 if group_size == -1 else 2
  assert q.dtype == jnp.int8 and q.shape == x.shape
  assert scale.dtype == jnp.float32 and scale.shape == (6, groups)
  q_ref, scale_ref = _numpy_quantize(x, bits, group_size)
  np.testing.assert_allclose(np.asarray(scale), scale_ref, rtol=1e-6)
  # Rounding ties may differ by one code only where x / s sits on a half step.
  assert np.abs(np.asarray(q, np.int64) - q_ref).max() <= 1
  assert np.mean(np.asarray(q, np.int64) == q_ref) > 0.999
  assert np.abs(np.asarray(q)).max() <= 2 ** (bits - 1) - 1

  fake = np.asarray(activations.fake_quantize_activations(jnp.asarray(x), bits, group_size))
  assert fake.dtype == np.float32
  scale_mk = np.repeat(np.asarray(scale), x.shape[1] // groups, axis=1)
  np.testing.assert_allclose(fake, np.asarray(q, np.float32) * scale_mk, rtol=1e-6)
  assert np.all(np.abs(fake - x) <= scale_mk / 2 * (1 + 1e-5))
  # The row max lands on the top code exactly.
  np.testing.assert_allclose(np.abs(fake).max(axis=1), np.abs(x).max(axis=1), rtol=1e-6)

  # Zero rows: scale 1, codes 0, no NaN.
  np.testing.assert_array_equal(np.asarray(scale)[2], 1.0)
  np.testing.assert_array_equal(np.asarray(q)[2], 0)
  assert np.all(np.isfinite(fake))


def test_group_scales_beat_per_token_on_uneven_rows():
  x = _inputs(seed=3)
  err = {}
  for group_size in (-1, 128):
    fake = np.asarray(activations.fake_quantize_activations(jnp.asarray(x), 4, group_size))
    err[group_size] = np.abs(fake - x)[:, :128].max()
  assert err[128] < err[-1] / 4


def test_more_bits_less_error_and_jit():
  x = jnp.asarray(_inputs(seed=4))
  fq = jax.jit(activations.fake_quantize_activations, static_argnums=(1, 2))
  err8 = float(jnp.abs(fq(x, 8, -1) - x).max())
  err4 = float(jnp.abs(fq(x, 4, -1) - x).max())
  assert err8 < err4 / 8
  eager = activations.fake_quantize_activations(x, 8, -1)
  np.testing.assert_array_equal(np.asarray(fq(x, 8, -1)), np.asarray(eager))


def test_bf16_input():
  x = jnp.asarray(_inputs(seed=5), jnp.bfloat16)
  q, scale = activations.quantize_activations(x, 8, 128)
  q_ref, scale_ref = _numpy_quantize(np.asarray(x, np.float32), 8, 128)
  np.testing.assert_allclose(np.asarray(scale), scale_ref, rtol=1e-6)
  assert np.abs(np.asarray(q, np.int64) - q_ref).max() <= 1


def test_errors():
  x = jnp.zeros((4, 256))
  with pytest.raises(ValueError, match="bits"):
    activations.quantize_activations(x, 16, -1)
  with pytest.raises(ValueError, match="group_size"):
    activations.quantize_activations(x, 8, 64)
  with pytest.raises(ValueError, match="K=200"):
    activations.quantize_activations(jnp.zeros((4, 200)), 8, 128)
  with pytest.raises(ValueError, match=r"\[M, K\]"):
    activations.quantize_activations(jnp.zeros((2, 4, 256)), 8, -1)

"""Tests for `jaxlab.quant_formats.activations`: dynamic symmetric quantization per token or per 128 columns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.quant_formats import activations


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


def _numpy_quantize_f64(x_mk, bits, group_size):
  """(q, scale) by the documented formula, with the quotients taken in float64.

  float64 holds float32 / small-integer quotients closely enough that rounding them once to
  float32 (the scale) or to an integer (the codes) is exact rounding of the real quotient.
  """
  m, k = x_mk.shape
  width = k if group_size == -1 else group_size
  q_max = 2 ** (bits - 1) - 1
  x_mgc = np.asarray(x_mk, np.float64).reshape(m, k // width, width)
  amax_mg = np.abs(x_mgc).max(axis=-1)
  scale_mg = np.where(amax_mg > 0, amax_mg / q_max, 1.0).astype(np.float32)
  q_mgc = np.clip(np.round(x_mgc / scale_mg[..., None].astype(np.float64)), -q_max, q_max)
  return q_mgc.reshape(m, k).astype(np.int64), scale_mg


_quantize_jit = jax.jit(activations.quantize_activations, static_argnums=(1, 2))


def _eager_and_jit(x, bits, group_size):
  eager = activations.quantize_activations(jnp.asarray(x), bits, group_size)
  jitted = _quantize_jit(jnp.asarray(x), bits, group_size)
  return [(np.asarray(q, np.int64), np.asarray(s)) for q, s in (eager, jitted)]


def test_halfway_values_round_to_even_eagerly_and_under_jit():
  # s = 3.28125 / 7 = 0.46875 exactly, so x / s = 7, 1.5, -1.5, 3.5: three ties.
  x = np.asarray([[3.28125, .703125, -.703125, 1.640625]], np.float32)
  q_ref, scale_ref = _numpy_quantize_f64(x, 4, -1)
  np.testing.assert_array_equal(q_ref, [[7, 2, -2, 4]])
  np.testing.assert_array_equal(scale_ref, [[0.46875]])
  for q, scale in _eager_and_jit(x, 4, -1):
    np.testing.assert_array_equal(q, q_ref)
    np.testing.assert_array_equal(scale, scale_ref)
  # Codes are constant in x; the scale moves with max|x| as d(s)/d(max|x|) = 1/7.
  grad = jax.grad(lambda v: activations.fake_quantize_activations(v, 4, -1).sum())
  for g in (grad(jnp.asarray(x)), jax.jit(grad)(jnp.asarray(x))):
    np.testing.assert_allclose(np.asarray(g), [[q_ref.sum() / 7, 0, 0, 0]], rtol=1e-6)


def _bf16_inputs(bits, seed):
  """bf16 rows where x / s often lands exactly on a half step.

  Half the groups get max|x| = q_max * 2^e, so s = 2^e and every x on a coarse enough grid
  is a tie; the other half keep a random max, so s carries all 24 bits.
  """
  rng = np.random.default_rng(seed)
  q_max = 2 ** (bits - 1) - 1
  x = rng.normal(size=(32, 256)) * rng.uniform(0.01, 8.0, size=(32, 1))
  x = np.asarray(jnp.asarray(x, jnp.bfloat16), np.float32)
  for row in range(0, 32, 2):
    for col in (0, 128):
      block = x[row, col:col + 128]
      amax = q_max * 2.0 ** np.floor(np.log2(np.abs(block).max() / q_max) + 1)
      block[np.argmax(np.abs(block))] = amax * rng.choice([-1, 1])
      # A ramp of halves of s keeps ties common even where random values miss them.
      block[:8] = (np.arange(8) - 3.5) * amax / q_max * rng.choice([1, 2])
  x[5] = 0.0
  return jnp.asarray(x, jnp.bfloat16)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group_size", [-1, 128])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bf16_codes_and_scales_identical_eager_jit_and_reference(bits, group_size, seed):
  x = _bf16_inputs(bits, seed + 10 * bits)
  x32 = np.asarray(x, np.float32)
  q_ref, scale_ref = _numpy_quantize_f64(x32, bits, group_size)
  width = 256 if group_size == -1 else 128
  quotient = x32.astype(np.float64) / np.repeat(scale_ref, width, axis=1)
  ties = np.abs(quotient - np.floor(quotient)) == 0.5
  assert ties.sum() > 100  # The inputs exercise the ties they are meant to.
  for q, scale in _eager_and_jit(x, bits, group_size):
    np.testing.assert_array_equal(scale, scale_ref)
    np.testing.assert_array_equal(q, q_ref)


@pytest.mark.parametrize("bits", [4, 8])
def test_float32_values_next_to_ties_round_by_the_real_quotient(bits):
  # x a few ulps from (c + 1/2) * s: a float32 quotient rounds onto the tie (or past it), the
  # real one does not, so only exact rounding agrees with the float64 reference everywhere.
  rng = np.random.default_rng(bits)
  q_max = 2 ** (bits - 1) - 1
  s_m1 = (rng.uniform(0.5, 2, size=(64, 1)) * np.exp2(rng.integers(-10, 10, size=(64, 1)))).astype(np.float32)
  c_mk = rng.integers(-q_max, q_max, size=(64, 128)).astype(np.float64)
  x = ((c_mk + 0.5) * s_m1).astype(np.float32)
  toward = rng.choice(np.asarray([-np.inf, np.inf], np.float32), size=x.shape)
  x = np.where(rng.random(x.shape) < 0.8, np.nextafter(x, toward), x)
  x[:, 0] = (q_max * s_m1[:, 0].astype(np.float64)).astype(np.float32)
  q_ref, scale_ref = _numpy_quantize_f64(x, bits, -1)
  for q, scale in _eager_and_jit(x, bits, -1):
    np.testing.assert_array_equal(scale, scale_ref)
    np.testing.assert_array_equal(q, q_ref)

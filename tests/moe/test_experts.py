"""Tests for the grouped SwiGLU experts against a per-row numpy loop."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.moe import swiglu_experts
from tests.moe import naive

E, D, F = 4, 8, 6


def _weights(seed=0):
  rng = np.random.default_rng(seed)
  gate_up = rng.normal(size=(E, D, 2 * F)).astype(np.float32) / np.sqrt(D)
  down = rng.normal(size=(E, F, D)).astype(np.float32) / np.sqrt(F)
  return rng, gate_up, down


def _expected(x_rd, gate_up, down, sizes, first, num_local):
  """Row r of group g -> expert g - first if that is a local expert, else zeros."""
  want = np.zeros(x_rd.shape, np.float64)
  ends = np.cumsum(sizes)
  for r in range(x_rd.shape[0]):
    g = int(np.searchsorted(ends, r, side="right"))
    if g < len(sizes) and first <= g < first + num_local:
      want[r] = naive.swiglu_np(x_rd[r].astype(np.float64), gate_up[g - first], down[g - first])
  return want


@functools.partial(jax.jit, static_argnames=("implementation", "interpret"))
def _run(x_rd, gate_up, down, sizes, offset, implementation="xla", interpret=False):
  return swiglu_experts(
      x_rd, gate_up, down, sizes, group_offset=offset, implementation=implementation, interpret=interpret
  )


def test_swiglu_experts_matches_per_row_loop_with_padding_rows():
  rng, gate_up, down = _weights()
  sizes = np.array([3, 0, 5, 2], np.int32)  # 10 rows in groups, 2 padding rows after them.
  x_rd = rng.normal(size=(12, D)).astype(np.float32)
  y_rd = _run(x_rd, gate_up, down, sizes, 0)
  np.testing.assert_allclose(y_rd, _expected(x_rd, gate_up, down, sizes, 0, E), rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(y_rd)[10:], 0.0)


def test_swiglu_experts_group_offset_zeroes_other_groups():
  rng, gate_up, down = _weights(1)
  sizes = np.array([2, 3, 1, 4, 2, 0, 3, 1], np.int32)  # 8 groups; this shard holds experts 4..7.
  x_rd = rng.normal(size=(16, D)).astype(np.float32)
  y_rd = _run(x_rd, gate_up, down, sizes, 4)
  np.testing.assert_allclose(y_rd, _expected(x_rd, gate_up, down, sizes, 4, E), rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(y_rd)[:10], 0.0)


def test_swiglu_experts_rejects_mismatched_weights():
  _, gate_up, down = _weights()
  x_rd, sizes = jnp.zeros((4, D)), jnp.array([4, 0, 0, 0], jnp.int32)
  with pytest.raises(ValueError, match="x_rd"):
    swiglu_experts(jnp.zeros((D,)), gate_up, down, sizes)
  with pytest.raises(ValueError, match="experts"):
    swiglu_experts(x_rd, gate_up, down[:3], sizes)
  with pytest.raises(ValueError, match="gate_up"):
    swiglu_experts(jnp.zeros((4, D + 1)), gate_up, down, sizes)
  with pytest.raises(ValueError, match="even"):
    swiglu_experts(x_rd, gate_up[..., :-1], down, sizes)
  with pytest.raises(ValueError, match="down"):
    swiglu_experts(x_rd, gate_up, down[:, :-1], sizes)
  with pytest.raises(ValueError, match="gate_up"):
    swiglu_experts(x_rd, gate_up[0], down, sizes)
  with pytest.raises(TypeError, match="down"):
    swiglu_experts(x_rd, gate_up, [[0.0]], sizes)


def test_swiglu_experts_pallas_triton_interpret():
  rng, gate_up, down = _weights(2)
  sizes = np.array([5, 0, 7, 4], np.int32)
  x_rd = rng.normal(size=(16, D)).astype(np.float32)
  # The interpreter runs anywhere, so a NoImplementationError here is a failure, not a skip.
  y_rd = _run(x_rd, gate_up, down, sizes, 0, implementation="pallas_triton", interpret=True)
  np.testing.assert_allclose(y_rd, _expected(x_rd, gate_up, down, sizes, 0, E), rtol=1e-4, atol=1e-5)

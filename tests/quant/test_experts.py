"""Tests for `jaxlab.quant_formats.experts` and the expert functions of `jaxlab.quant.rtn` and
`jaxlab.quant_formats.decode`.

Also covers `QuantizedWeight` as a pytree, since `ExpertWeights` is made of them.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlab.quant as quant
import jaxlab.quant_formats as quant_formats
from jaxlab.quant import rtn
from jaxlab.quant_formats import decode
from jaxlab.quant_formats.experts import ExpertWeights, from_dense
from jaxlab.quant_formats.scheme import BF16, bits_per_weight, parse_scheme
from jaxlab.quant_formats.weights import QuantizedWeight
from tests.quant import numpy_reference

E, K, N = 5, 256, 8
MIXED = ["w4a16_g128_asym", "bf16", "w8a8_g-1_sym", "w4a16_g128_asym", "w2a16_g128_sym"]


def _weights(seed=0, dtype=np.float32):
  return np.random.default_rng(seed).normal(size=(E, K, N)).astype(dtype)


def _expected_expert(w_kn, name):
  """float64 dequantized expert from the NumPy restatement of the spec."""
  scheme = parse_scheme(name)
  if scheme.w_bits == 16:
    return w_kn.astype(np.float64)
  return numpy_reference.dequantize(
      *numpy_reference.quantize(w_kn, scheme.w_bits, scheme.group_size, scheme.symmetric)
  )


def test_mixed_schemes_layout_and_round_trip():
  w = _weights()
  ew = rtn.quantize_experts(jnp.asarray(w), MIXED)
  # Stacks in order of first use; slots count up within a stack.
  assert [s.name for s in ew.schemes] == ["w4a16_g128_asym", "bf16", "w8a8_g-1_sym", "w2a16_g128_sym"]
  assert ew.expert_scheme == (0, 1, 2, 0, 3)
  assert ew.expert_slot == (0, 0, 0, 1, 0)
  assert ew.experts_with(0) == (0, 3)
  assert (ew.num_experts, ew.in_features, ew.out_features) == (E, K, N)
  assert [ew.scheme_of(e).name for e in range(E)] == MIXED
  assert ew.stacks[0].packed.shape == (2, K // 2, N) and ew.stacks[0].scale.shape == (2, 2, N)
  assert ew.stacks[1].packed.dtype == jnp.float32  # bf16 experts keep the input dtype.
  assert ew.stacks[2].packed.dtype == jnp.int8 and ew.stacks[2].scale.shape == (1, 1, N)

  deq = np.asarray(decode.dequantize_experts(ew))
  assert deq.shape == (E, K, N) and deq.dtype == np.float32
  for e, name in enumerate(MIXED):
    np.testing.assert_allclose(deq[e], _expected_expert(w[e], name), rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(deq[1], w[1])
  assert decode.dequantize_experts(ew, jnp.bfloat16).dtype == jnp.bfloat16


def test_one_scheme_for_all():
  w = _weights(seed=1)
  ew = rtn.quantize_experts(jnp.asarray(w), "w3a16_g128_asym")
  assert len(ew.stacks) == 1 and ew.expert_slot == tuple(range(E))
  deq = np.asarray(decode.dequantize_experts(ew))
  for e in range(E):
    np.testing.assert_allclose(deq[e], _expected_expert(w[e], "w3a16_g128_asym"), rtol=1e-6, atol=1e-7)
  assert rtn.average_bits(ew) == 3.25


def test_average_bits():
  ew = rtn.quantize_experts(jnp.asarray(_weights(seed=2)), MIXED)
  expected = (4.25 + 16 + 8 + 4.25 + 2.25) / 5
  assert rtn.average_bits(ew) == pytest.approx(expected)
  assert rtn.average_bits(ew) == pytest.approx(np.mean([bits_per_weight(s) for s in MIXED]))


def test_jit_round_trip_and_pytree():
  w = jnp.asarray(_weights(seed=3))
  ew = jax.jit(rtn.quantize_experts, static_argnums=1)(w, tuple(MIXED))
  eager = rtn.quantize_experts(w, MIXED)
  assert jax.tree.structure(ew) == jax.tree.structure(eager)
  for a, b in zip(jax.tree.leaves(ew), jax.tree.leaves(eager)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # ExpertWeights goes through jit as an argument, with its static assignment intact.
  deq = jax.jit(decode.dequantize_experts)(ew)
  np.testing.assert_array_equal(np.asarray(deq), np.asarray(decode.dequantize_experts(eager)))
  # Leaves are the arrays only; the scheme assignment is static aux data.
  assert len(jax.tree.leaves(ew)) == 3 + 1 + 2 + 2  # asym: codes, scale, zero; bf16: w; sym: codes, scale.
  moved = jax.device_put(ew, jax.devices()[1])
  assert moved.expert_scheme == ew.expert_scheme and moved.schemes == ew.schemes
  doubled = jax.tree.map(lambda a: a, ew)
  assert isinstance(doubled, ExpertWeights) and doubled.stacks[0].scheme == ew.stacks[0].scheme


def test_quantized_weight_pytree_and_bytes():
  quantize = jax.jit(rtn.quantize_weight, static_argnums=1)  # One compile, not one per op.
  qw = quantize(jnp.asarray(_weights(seed=4)), "w4a16_g128_asym")
  assert qw.num_bytes == E * (K // 2) * N + 2 * E * 2 * N * 2  # uint8 codes + float16 scale and zero.
  leaves, treedef = jax.tree.flatten(qw)
  assert len(leaves) == 3
  rebuilt = jax.tree.unflatten(treedef, leaves)
  assert rebuilt.scheme == qw.scheme and rebuilt.in_features == K
  scaled = jax.jit(lambda q: jax.tree.map(lambda a: a, q))(qw)
  assert isinstance(scaled, QuantizedWeight) and scaled.out_features == N
  sym = quantize(jnp.asarray(_weights(seed=4)), "w8a8_g-1_sym")
  assert len(jax.tree.leaves(sym)) == 2 and sym.num_bytes == E * K * N + E * N * 2


def test_from_dense():
  w = jnp.asarray(_weights(seed=5), jnp.bfloat16)
  ew = from_dense(w)
  assert ew.schemes == (BF16,) and ew.stacks[0].packed.dtype == jnp.bfloat16
  assert ew.expert_slot == tuple(range(E)) and rtn.average_bits(ew) == 16.0
  np.testing.assert_array_equal(np.asarray(decode.dequantize_experts(ew)), np.asarray(w, np.float32))
  assert ew.num_bytes == E * K * N * 2
  # The same as quantizing with the bf16 scheme.
  assert jax.tree.structure(ew) == jax.tree.structure(rtn.quantize_experts(w, "bf16"))


def test_dequantize_experts_order_is_not_stack_order():
  w = _weights(seed=6)
  schemes = ["w8a16_g128_asym", "w2a16_g-1_asym", "w8a16_g128_asym", "w2a16_g-1_asym", "w8a16_g128_asym"]
  deq = np.asarray(decode.dequantize_experts(rtn.quantize_experts(jnp.asarray(w), schemes)))
  # 8-bit experts are close to w, 2-bit ones far: a mixed-up order would show.
  err = np.abs(deq - w).max(axis=(1, 2))
  assert np.all(err[[0, 2, 4]] < 0.05) and np.all(err[[1, 3]] > 0.2)


def test_errors():
  w = jnp.asarray(_weights(seed=7))
  with pytest.raises(ValueError, match="3 entries for 5 experts"):
    rtn.quantize_experts(w, ["bf16"] * 3)
  with pytest.raises(ValueError, match=r"\[E, K, N\]"):
    rtn.quantize_experts(w[0], "bf16")
  with pytest.raises(ValueError, match="K=200"):
    rtn.quantize_experts(jnp.zeros((2, 200, 4)), "w4a16_g128_asym")
  with pytest.raises(ValueError, match="supported"):
    rtn.quantize_experts(w, ["w4a16_g128_asym"] * 4 + ["w9a16_g128_asym"])
  with pytest.raises(TypeError, match="sequence"):
    rtn.quantize_experts(w, 4)
  with pytest.raises(TypeError, match="ExpertWeights"):
    decode.dequantize_experts(w)
  stack = rtn.quantize_weight(w[:2], "bf16")
  other = rtn.quantize_weight(jnp.zeros((1, K, 4)), "bf16")
  with pytest.raises(ValueError, match="one \\[K, N\\]"):
    ExpertWeights((stack, other), (0, 0, 1), (0, 1, 0))
  with pytest.raises(ValueError, match="slots"):
    ExpertWeights((stack,), (0, 0), (0, 2))
  with pytest.raises(ValueError, match="stack indices"):
    ExpertWeights((stack,), (0, 1), (0, 0))
  with pytest.raises(ValueError, match="entries"):
    ExpertWeights((stack,), (0, 0), (0,))


def test_public_exports():
  for name in quant.__all__:
    assert hasattr(quant, name), name
  for name in quant_formats.__all__:
    assert hasattr(quant_formats, name), name
  assert quant.dequantize_experts is decode.dequantize_experts
  assert quant.ExpertWeights is quant_formats.ExpertWeights

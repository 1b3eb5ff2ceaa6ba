"""Tests for `jaxlab.quant_formats.packing`: the bit layout the grouped-matmul kernel reads."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.quant_formats import packing
from tests.quant import numpy_reference


def _random_codes(shape, bits, seed=0):
  return np.random.default_rng(seed).integers(0, 2**bits, size=shape, dtype=np.uint8)


def test_hand_made_4_bit_bytes():
  q = np.zeros((256, 1), np.uint8)
  q[0], q[64] = 0x3, 0xA  # Row 0: low nibble from K row 0, high nibble from K row 64.
  q[5], q[69] = 0xF, 0x1
  q[63], q[127] = 0x7, 0xE
  q[128], q[192] = 0x1, 0x2  # The second block starts at packed row 64.
  packed = np.asarray(packing.pack_codes(jnp.asarray(q), 4))
  assert packed.shape == (128, 1) and packed.dtype == np.uint8
  expected = np.zeros(128, np.uint8)
  expected[0], expected[5], expected[63], expected[64] = 0xA3, 0x1F, 0xE7, 0x21
  np.testing.assert_array_equal(packed[:, 0], expected)


def test_hand_made_2_bit_bytes():
  q = np.zeros((256, 1), np.uint8)
  q[0], q[32], q[64], q[96] = 1, 2, 3, 0  # Row 0: K rows 0, 32, 64, 96 in bits 0-1, 2-3, 4-5, 6-7.
  q[127] = 3
  q[128 + 33] = 2  # Second block, run 1, row 1: packed row 32 + 1, bits 2-3.
  packed = np.asarray(packing.pack_codes(jnp.asarray(q), 2))
  assert packed.shape == (64, 1)
  expected = np.zeros(64, np.uint8)
  expected[0], expected[31], expected[33] = 0b00_11_10_01, 0b11_00_00_00, 0b10_00
  np.testing.assert_array_equal(packed[:, 0], expected)


def test_hand_made_3_bit_bytes():
  k = 256
  q = np.zeros((k, 1), np.uint8)
  q[0], q[16], q[127] = 0b101, 0b100, 0b111
  q[128 + 16] = 0b110  # Second block: low bits to row 32 + 16 (run 0), high bit to K/4 + 16 + 0, bit 1.
  packed = np.asarray(packing.pack_codes(jnp.asarray(q), 3))
  assert packed.shape == (96, 1)
  expected = np.zeros(96, np.uint8)
  expected[0] = 0b01  # Low bits of q[0]; q[16]'s low bits are 0.
  expected[31] = 0b11 << 6  # Low bits of q[127] = q[32*3 + 31].
  expected[32 + 16] = 0b10
  expected[k // 4] = 0b11  # High plane row 0: bit 2 of q[0] (bit 0) and of q[16] (bit 1).
  expected[k // 4 + 15] = 1 << 7  # q[127] = q[16*7 + 15].
  expected[k // 4 + 16] = 0b10
  np.testing.assert_array_equal(packed[:, 0], expected)


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_pack_matches_elementwise_reference_and_round_trips(bits):
  q = _random_codes((384, 6), bits, seed=bits)
  packed = packing.pack_codes(jnp.asarray(q), bits)
  assert packed.dtype == jnp.uint8
  assert packed.shape == (384 * bits // 8, 6) == (packing.packed_rows(384, bits), 6)
  np.testing.assert_array_equal(np.asarray(packed), numpy_reference.pack_codes(q, bits))
  unpacked = packing.unpack_codes(packed, bits, 384)
  assert unpacked.dtype == jnp.uint8
  np.testing.assert_array_equal(np.asarray(unpacked), q)


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_leading_axes_and_jit(bits):
  q = _random_codes((2, 3, 256, 5), bits, seed=10 + bits)
  pack = jax.jit(packing.pack_codes, static_argnums=1)
  unpack = jax.jit(packing.unpack_codes, static_argnums=(1, 2))
  packed = pack(jnp.asarray(q), bits)
  assert packed.shape == (2, 3, 256 * bits // 8, 5)
  for a in range(2):
    for b in range(3):
      np.testing.assert_array_equal(np.asarray(packed[a, b]), numpy_reference.pack_codes(q[a, b], bits))
  np.testing.assert_array_equal(np.asarray(unpack(packed, bits, 256)), q)


def test_int8_codes_pass_through_at_8_bits():
  qs = np.random.default_rng(0).integers(-127, 128, size=(128, 3)).astype(np.int8)
  packed = packing.pack_codes(jnp.asarray(qs), 8)
  assert packed.dtype == jnp.int8
  np.testing.assert_array_equal(np.asarray(packing.unpack_codes(packed, 8, 128)), qs)


def test_out_of_range_codes_do_not_spill_into_neighbours():
  q = np.zeros((128, 1), np.int32)
  q[0] = 0x13  # Only the low nibble, 3, belongs to a 4-bit code.
  packed = np.asarray(packing.pack_codes(jnp.asarray(q), 4))
  assert packed[0, 0] == 0x03


def test_errors():
  with pytest.raises(ValueError, match="128.*K=100"):
    packing.pack_codes(jnp.zeros((100, 4), jnp.uint8), 4)
  with pytest.raises(ValueError, match="128"):
    packing.pack_codes(jnp.zeros((100, 4), jnp.uint8), 8)
  with pytest.raises(ValueError, match="bits"):
    packing.pack_codes(jnp.zeros((128, 4), jnp.uint8), 5)
  with pytest.raises(TypeError, match="integer"):
    packing.pack_codes(jnp.zeros((128, 4), jnp.float32), 4)
  with pytest.raises(ValueError, match="packed rows"):
    packing.unpack_codes(jnp.zeros((32, 4), jnp.uint8), 4, 128)
  with pytest.raises(TypeError, match="uint8"):
    packing.unpack_codes(jnp.zeros((64, 4), jnp.int32), 4, 128)
  with pytest.raises(ValueError, match="K=96"):
    packing.unpack_codes(jnp.zeros((48, 4), jnp.uint8), 4, 96)

"""Tests for `jaxlab.quant_formats.scheme`: names, validation, bit accounting."""

import dataclasses

import pytest

from jaxlab.quant_formats import scheme as qs
from jaxlab.quant_formats.scheme import (
    BF16,
    SUPPORTED_SCHEMES,
    QuantScheme,
    activation_bits,
    bits_per_weight,
    parse_scheme,
)


def test_names():
  assert QuantScheme(4, 16, 128, False).name == "w4a16_g128_asym"
  assert QuantScheme(8, 8, -1, True).name == "w8a8_g-1_sym"
  assert BF16.name == "bf16" and str(BF16) == "bf16"
  assert (BF16.quantizes_weights, BF16.quantizes_activations) == (False, False)
  w4a4 = parse_scheme("w4a4_g128_sym")
  assert (w4a4.quantizes_weights, w4a4.quantizes_activations) == (True, True)


def test_supported_schemes_are_exactly_the_rule_set():
  """Independently enumerated from the rules: weight-only any bits/group/symmetry; W-A schemes
  symmetric with 4/8-bit weights and at least as many activation bits; bf16 once."""
  expected = {"bf16"}
  for w in (1, 2, 3, 4, 8):
    for g in (128, -1):
      for sym in ("sym", "asym"):
        if w == 1 and sym == "sym":
          continue  # A symmetric 1-bit grid has only the level 0.
        expected.add(f"w{w}a16_g{g}_{sym}")
      if w in (4, 8):
        for a in (8, 4):
          if a < w:
            continue
          expected.add(f"w{w}a{a}_g{g}_sym")
  assert set(SUPPORTED_SCHEMES) == expected
  assert len(SUPPORTED_SCHEMES) == len(expected)
  for name in SUPPORTED_SCHEMES:
    assert parse_scheme(name).name == name


def test_parse_scheme():
  assert parse_scheme("w16a16") is BF16 and parse_scheme("bf16") is BF16
  assert parse_scheme("w16a16_g-1_sym") == BF16
  scheme = parse_scheme("w3a16_g128_asym")
  assert scheme == QuantScheme(3, 16, 128, False)
  assert parse_scheme(scheme) is scheme


def test_unquantized_weights_normalise_to_bf16():
  assert QuantScheme(16) == BF16 and QuantScheme(16, 16, 128, False) == BF16
  assert parse_scheme("w16a16_g128_asym") == BF16
  assert QuantScheme(16).name == "bf16"


def test_hashable_and_frozen():
  assert len({parse_scheme("w4a16_g128_asym"), QuantScheme(4, 16, 128, False), BF16}) == 2
  with pytest.raises(dataclasses.FrozenInstanceError):
    BF16.w_bits = 4


@pytest.mark.parametrize(
    "bad",
    ["w5a16_g128_asym", "w4a16_g64_asym", "w4a8_g128_asym", "w2a8_g-1_sym", "w3a4_g128_sym", "w16a8_g-1_sym",
     "w4a2_g128_sym", "int4", "w4a16_g128"],
)
def test_invalid_names_list_supported(bad):
  with pytest.raises(ValueError) as info:
    parse_scheme(bad)
  message = str(info.value)
  assert all(name in message for name in SUPPORTED_SCHEMES), message


def test_invalid_construction():
  with pytest.raises(ValueError, match="supported: bf16"):
    QuantScheme(4, 16, 32, True)
  with pytest.raises(ValueError, match="symmetric"):
    QuantScheme(8, 8, -1, False)
  with pytest.raises(TypeError, match="QuantScheme or a name"):
    parse_scheme(4)


@pytest.mark.parametrize(
    "name, bits",
    [("w4a16_g128_asym", 4.25), ("w8a16_g-1_asym", 8.0), ("w3a16_g128_asym", 3.25), ("w3a16_g128_sym", 3.25),
     ("w2a16_g128_asym", 2.25), ("w4a4_g128_sym", 4.25), ("w8a8_g-1_sym", 8.0), ("w4a16_g-1_sym", 4.0),
     ("bf16", 16.0)],
)
def test_bits_per_weight(name, bits):
  assert bits_per_weight(name) == bits
  assert bits_per_weight(parse_scheme(name)) == bits


@pytest.mark.parametrize(
    "name, bits",
    [("w4a16_g128_asym", 16.0), ("w8a8_g-1_sym", 8.0), ("w8a8_g128_sym", 8.25), ("w4a4_g128_sym", 4.25),
     ("w4a4_g-1_sym", 4.0), ("bf16", 16.0)],
)
def test_activation_bits(name, bits):
  assert activation_bits(name) == bits


def test_pack_block():
  assert qs.PACK_BLOCK == 128

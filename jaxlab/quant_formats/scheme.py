"""Quantization schemes `wXaY_gZ_{sym,asym}`: weight bits, activation bits, group size, symmetry.

X-bit weights (16 = unquantized), Y-bit activations (16 = unquantized), group size Z along
the input (K) axis: 128, or -1 for one scale per output channel (weights) / per token
(activations). Weight-only schemes may be symmetric or asymmetric; schemes that quantize
activations are symmetric for both operands, as in MxMoE.
"""

from __future__ import annotations

import dataclasses
import re

# Packed codes and group scales come in blocks of this many K rows.
PACK_BLOCK = 128

WEIGHT_BITS = (1, 2, 3, 4, 8, 16)
ACTIVATION_BITS = (16, 8, 4)
GROUP_SIZES = (128, -1)

_NAME_PATTERN = re.compile(r"^w(\d+)a(\d+)_g(-1|\d+)_(sym|asym)$")


@dataclasses.dataclass(frozen=True)
class QuantScheme:
  """One quantization scheme; see the module docstring for the notation."""

  w_bits: int
  a_bits: int = 16
  group_size: int = -1
  symmetric: bool = False

  def __post_init__(self):
    if self.w_bits == 16 and self.a_bits == 16 and self.group_size in GROUP_SIZES:
      # Group size and symmetry mean nothing for unquantized weights: one spelling, BF16.
      object.__setattr__(self, "group_size", -1)
      object.__setattr__(self, "symmetric", True)
    problem = _problem(self)
    if problem:
      raise ValueError(f"unsupported quantization scheme ({problem}); supported: {', '.join(SUPPORTED_SCHEMES)}")

  @property
  def name(self) -> str:
    if self.w_bits == 16:
      return "bf16"
    return f"w{self.w_bits}a{self.a_bits}_g{self.group_size}_{'sym' if self.symmetric else 'asym'}"

  @property
  def quantizes_weights(self) -> bool:
    return self.w_bits < 16

  @property
  def quantizes_activations(self) -> bool:
    return self.a_bits < 16

  def __str__(self) -> str:
    return self.name


def _problem(scheme: QuantScheme) -> str | None:
  """Why `scheme` is not supported, or None."""
  if scheme.w_bits not in WEIGHT_BITS:
    return f"weight bits {scheme.w_bits} not in {WEIGHT_BITS}"
  if scheme.a_bits not in ACTIVATION_BITS:
    return f"activation bits {scheme.a_bits} not in {ACTIVATION_BITS}"
  if scheme.group_size not in GROUP_SIZES:
    return f"group size {scheme.group_size} not in {GROUP_SIZES}"
  if scheme.w_bits == 16 and (scheme.a_bits != 16 or scheme.group_size != -1 or not scheme.symmetric):
    return "unquantized weights are written 'bf16' (w16a16_g-1_sym)"
  if scheme.w_bits == 1 and scheme.symmetric:
    return "1-bit weights are asymmetric (a symmetric 1-bit grid has only the level 0)"
  if scheme.a_bits < 16 and not scheme.symmetric:
    return "schemes that quantize activations are symmetric"
  if scheme.a_bits < 16 and scheme.w_bits not in (4, 8):
    return "activation quantization pairs with 4- or 8-bit weights"
  if scheme.a_bits < scheme.w_bits:
    # Both operands meet in int8 tensor-core products: 4-bit activations against 8-bit
    # weights would lose accuracy and save nothing.
    return "activations are quantized to at least as many bits as the weights"
  return None


def _all_schemes() -> tuple[QuantScheme, ...]:
  schemes = [QuantScheme(16, 16, -1, True)]
  for w_bits in WEIGHT_BITS[:-1]:
    for a_bits in ACTIVATION_BITS:
      for group_size in GROUP_SIZES:
        for symmetric in (False, True):
          candidate = QuantScheme.__new__(QuantScheme)
          object.__setattr__(candidate, "w_bits", w_bits)
          object.__setattr__(candidate, "a_bits", a_bits)
          object.__setattr__(candidate, "group_size", group_size)
          object.__setattr__(candidate, "symmetric", symmetric)
          if _problem(candidate) is None:
            schemes.append(candidate)
  return tuple(schemes)


SUPPORTED_SCHEMES: tuple[str, ...] = tuple(s.name for s in _all_schemes())

BF16 = QuantScheme(16, 16, -1, True)


def parse_scheme(scheme: QuantScheme | str) -> QuantScheme:
  """A QuantScheme from its name ("w4a16_g128_asym", "bf16", "w16a16") or itself.

  Raises:
    ValueError: the name is malformed or not supported; the message lists supported names.
  """
  if isinstance(scheme, QuantScheme):
    return scheme
  if not isinstance(scheme, str):
    raise TypeError(f"a quantization scheme is a QuantScheme or a name, got {type(scheme).__name__}")
  if scheme in ("bf16", "w16a16"):
    return BF16
  match = _NAME_PATTERN.match(scheme)
  if match is None:
    raise ValueError(f"unknown quantization scheme {scheme!r}; supported: {', '.join(SUPPORTED_SCHEMES)}")
  w_bits, a_bits, group_size, symmetry = match.groups()
  return QuantScheme(int(w_bits), int(a_bits), int(group_size), symmetry == "sym")


def bits_per_weight(scheme: QuantScheme | str) -> float:
  """Average stored bits per weight, counted as MxMoE does.

  A 128-group adds 0.25 bit (a 16-bit scale and a 16-bit zero per 128 weights; MxMoE charges
  the same for symmetric groups); per-channel scales are not counted. w4a16_g128_asym = 4.25.
  """
  scheme = parse_scheme(scheme)
  if not scheme.quantizes_weights:
    return 16.0
  return scheme.w_bits + (0.25 if scheme.group_size == PACK_BLOCK else 0.0)


def activation_bits(scheme: QuantScheme | str) -> float:
  """Average bits per activation element, counted like `bits_per_weight`."""
  scheme = parse_scheme(scheme)
  if not scheme.quantizes_activations:
    return 16.0
  return scheme.a_bits + (0.25 if scheme.group_size == PACK_BLOCK else 0.0)

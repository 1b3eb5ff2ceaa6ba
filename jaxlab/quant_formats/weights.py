"""`QuantizedWeight`: packed integer codes plus scales and zeros of one weight matrix (or a stack).

The storage layout (bit packing along K in 128-row blocks, offset-binary codes for
symmetric schemes below 8 bits) is documented in `jaxlab.quant_formats.packing`.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from jaxlab.quant_formats.scheme import QuantScheme


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class QuantizedWeight:
  """A [..., K, N] weight in a quantization scheme.

  Attributes:
    packed: the codes, packed as `jaxlab.quant_formats.packing` documents; for the bf16 scheme, the
      float weight itself. Leading axes (e.g. experts) come first.
    scale: [..., K/128, N] (group 128) or [..., 1, N] (per channel); None for bf16.
    zero: like `scale` for asymmetric schemes (w = q * scale + zero), else None.
    scheme: the quantization scheme (static).
    in_features: K, the logical number of rows (static).
    out_features: N (static).
  """

  packed: jax.Array
  scale: jax.Array | None
  zero: jax.Array | None
  scheme: QuantScheme = dataclasses.field(metadata=dict(static=True))
  in_features: int = dataclasses.field(metadata=dict(static=True))
  out_features: int = dataclasses.field(metadata=dict(static=True))

  @property
  def num_bytes(self) -> int:
    """Bytes held by the arrays (codes, scales, zeros)."""
    return sum(int(np.prod(a.shape)) * a.dtype.itemsize for a in (self.packed, self.scale, self.zero) if a is not None)

  @property
  def leading_shape(self) -> tuple[int, ...]:
    """Shape of the leading (stack) axes, e.g. (E,) for a stack of experts."""
    return tuple(self.packed.shape[:-2])

"""Identity-specific embeddings: one learned vector per identity, painted onto its mask pixels.

Structural Video Diffusion learns N vectors E in R^{N x C} (like DETR's object queries). For each
frame, vector n is painted onto every pixel whose identity label is n, giving E^f [H, W, C]; the
stacked maps go through a zero-initialised convolution (ControlNet-style) and are added to the
noisy input, x~ = x + zero_conv(E). The zero start makes the model equal to the one without
identities until the convolution learns, and a label that never occurs leaves its vector unused.
Since the masks are tracked, identity n stays bound to one person when people cross or swap places.
"""

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import _compat
from jaxlab.sharding.annotate import param_with_axes

# A 3x3 kernel per frame: each pixel sees its neighbours, so a painted map's edges can be sharpened or
# dilated a little, without any mixing across frames.
_KERNEL = 3


def paint_identity_map(identity_bfhw: jax.Array, table_nc: jax.Array) -> jax.Array:
  """Paints the identity vectors onto their masks.

  Args:
    identity_bfhw: int [B, F, H, W] labels: 0 background, n in 1..N identity n (any leading axes
      work: the output has the labels' shape plus C).
    table_nc: [N, C] one vector per identity.

  Returns:
    [B, F, H, W, C] in the table's dtype: zeros where the label is 0, table[n - 1] where it is n.
    When the labels are concrete, labels outside [0, N] raise ValueError; traced labels are not
    checked, and an out-of-range one is painted NaN (so it shows, rather than borrowing a vector).
  """
  table_nc = jnp.asarray(table_nc)
  if table_nc.ndim != 2:
    raise ValueError(f"table_nc must be [num_identities, channels], got shape {table_nc.shape}")
  if not jnp.issubdtype(jnp.asarray(identity_bfhw).dtype, jnp.integer):
    raise ValueError(f"identity labels must be integers, got dtype {jnp.asarray(identity_bfhw).dtype}")
  n = table_nc.shape[0]
  if not isinstance(identity_bfhw, _compat.Tracer):
    labels = np.asarray(identity_bfhw)
    if labels.size and (labels.min() < 0 or labels.max() > n):
      raise ValueError(f"identity labels must lie in [0, {n}] (0 background, N = {n} identities), "
                       f"got min label {labels.min()} and max label {labels.max()}")
  # Row 0 of the padded table is the background's zero vector, so label n reads row n directly.
  padded_nc = jnp.concatenate([jnp.zeros((1, table_nc.shape[1]), table_nc.dtype), table_nc], axis=0)
  labels = jnp.asarray(identity_bfhw)
  # take would wrap negative labels around to the last rows; send them past the end instead.
  labels = jnp.where(labels < 0, n + 1, labels)
  return jnp.take(padded_nc, labels, axis=0, mode="fill", fill_value=jnp.nan)


class ZeroConv(nn.Module):
  """A 3x3 'same' convolution applied to every frame alone, kernel and bias starting at zero.

  Params: kernel [3, 3, C_in, C_out], bias [C_out] (both replicated: they are tiny).
  """

  features: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_bfhwc: jax.Array) -> jax.Array:
    """[B, F, H, W, C_in] -> [B, F, H, W, features] in `dtype`."""
    zeros = nn.initializers.zeros
    conv = nn.Conv(self.features, (_KERNEL, _KERNEL), padding="SAME", dtype=self.dtype,
                   param_dtype=self.param_dtype, kernel_init=param_with_axes(zeros, (None, None, None, None)),
                   bias_init=param_with_axes(zeros, (None,)), name="conv")
    # Frames fold into the batch: the convolution never mixes frames.
    lead = x_bfhwc.shape[:-3]
    out = conv(x_bfhwc.reshape((-1,) + x_bfhwc.shape[-3:]))
    return out.reshape(lead + out.shape[-3:])


class IdentityEmbedding(nn.Module):
  """Identity labels -> zero_conv(painted identity vectors), added to the noisy input by the caller.

  Fields:
    num_identities: N, the identity slots (labels 1..N; 0 is background).
    channels: C, the size of each identity vector.
    out_channels: an int, for one output [B, F, H, W, out_channels] through one convolution
      `zero_conv`; or a mapping name -> channels, for one output per name, each through its own
      convolution `zero_conv_<name>` applied to the same painted map (one per modality branch).

  Params: table [N, C], normal with stddev 1 (as DETR's query embeddings, torch's nn.Embedding
  default). The zero convolution gates this path, so the table's scale is not seen at the start;
  it sets how fast the convolution learns (its gradient is proportional to the painted map), and a
  unit scale keeps that on par with the other input layers, whereas a 0.02 table would make the
  path's growth a product of two small numbers. zero_conv*/conv/{kernel, bias}: zeros.
  """

  num_identities: int
  channels: int
  out_channels: int | Mapping[str, int]
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, identity_bfhw: jax.Array) -> jax.Array | dict[str, jax.Array]:
    """int [B, F, H, W] labels in [0, N] -> [B, F, H, W, out] (or a dict of them), all zero at init."""
    init = param_with_axes(nn.initializers.normal(stddev=1.0), (None, None))
    table_nc = self.param("table", init, (self.num_identities, self.channels), self.param_dtype)
    painted_bfhwc = paint_identity_map(identity_bfhw, table_nc.astype(self.dtype))
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    if isinstance(self.out_channels, Mapping):
      return {name: ZeroConv(c, name=f"zero_conv_{name}", **kw)(painted_bfhwc) for name, c in self.out_channels.items()}
    return ZeroConv(self.out_channels, name="zero_conv", **kw)(painted_bfhwc)

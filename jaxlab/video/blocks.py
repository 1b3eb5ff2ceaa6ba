"""Transformer blocks of the video denoiser: spatial attention with reference keys, temporal attention, MLP.

Tokens are laid out `x_bftd` [B, F, T, D]: F frames of T = (H/p)(W/p) patch tokens each, row-major
over the patch grid. A `VideoBlock` is three pre-LN residual sub-layers, each modulated by the
conditioning vector c (adaLN-Zero as in `jaxlab.flow.dit`: LayerNorms without affine, a shift, scale
and gate per sub-layer from zero-initialised projections of c, so a block starts as the identity):

  spatial   per frame (frames folded into the batch), 2-D RoPE on patch rows and columns. With
            reference features [B, T, D] the keys and values come from [frame tokens, reference
            tokens] through the same projections, the reference tokens at the same grid positions
            (Animate Anyone's reference attention: appearance is copied by position-aware lookup).
  temporal  per token position (positions folded into the batch: [B*T, F, heads, head_dim]),
            1-D RoPE over the frame index. It goes through `dot_product_attention` with context
            parallelism on, so on a mesh with a "context" axis > 1 the frames are split over it and
            attended by ring attention; its queries are constrained with frames as the SEQ axis.
  mlp       GELU MLP on every token.

Between blocks the activations are constrained (BATCH, SEQ, -, EMBED) with SEQ = frames, so the
context rule preset keeps frames split over "context" across the whole stack; spatial attention
and the MLP then run on the local frames only.

A `ReferenceBlock` is the reference net's block: spatial self-attention and MLP on one image's
tokens, no temporal attention, no reference keys. It returns its modulated LayerNorm output (the
input of its attention) as the features the denoiser's block of the same index attends to.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.nn import GeluMLP, dot_product_attention, layer_norm
from jaxlab.nn.adaln import Modulation, modulate
from jaxlab.nn.attention import KV_AXES
from jaxlab.nn.rope import apply_rope
from jaxlab.nn.rope2d import apply_rope_2d
from jaxlab.sharding import axes
from jaxlab.sharding.annotate import constrain, param_with_axes

# The LayerNorms have no learned scale or bias: adaLN supplies them.
LN_EPS = 1e-6
# Video tokens [B, F, T, D]: the frames are the sequence that context parallelism splits.
VIDEO_AXES = (axes.BATCH, axes.SEQ, None, axes.EMBED)
# Reference (single image) tokens [B, T, D]: not split along T (every frame's keys read all of them).
IMAGE_AXES = (axes.BATCH, None, axes.EMBED)
_Q_AXES = (axes.BATCH, axes.SEQ, axes.HEADS, axes.HEAD_DIM)


def _attention_weights(module: nn.Module, d: int, h: int, k: int):
  """Creates (project, output) closures over the eight attention parameters of `module`."""
  in_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=0, out_axis=(1, 2))
  out_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=(0, 1), out_axis=2)
  zeros = nn.initializers.zeros
  dtype, param_dtype = module.dtype, module.param_dtype
  weights = {}
  for name in ("q", "k", "v"):
    weights[name] = (
        module.param(f"w{name}", param_with_axes(in_init, (axes.EMBED, axes.HEADS, axes.HEAD_DIM)), (d, h, k),
                     param_dtype),
        module.param(f"b{name}", param_with_axes(zeros, (axes.HEADS, axes.HEAD_DIM)), (h, k), param_dtype))
  w_o_hkd = module.param("wo", param_with_axes(out_init, (axes.HEADS, axes.HEAD_DIM, axes.EMBED)), (h, k, d),
                         param_dtype)
  b_o_d = module.param("bo", param_with_axes(zeros, (axes.EMBED,)), (d,), param_dtype)

  def project(name: str, x_nd: jax.Array) -> jax.Array:
    """[..., D] -> [..., heads, head_dim]."""
    w_dhk, b_hk = weights[name]
    return jnp.einsum("...d,dhk->...hk", x_nd.astype(dtype), w_dhk.astype(dtype)) + b_hk.astype(dtype)

  def output(out_nhk: jax.Array) -> jax.Array:
    """[..., heads, head_dim] -> [..., D]."""
    return jnp.einsum("...hk,hkd->...d", out_nhk.astype(dtype), w_o_hkd.astype(dtype)) + b_o_d.astype(dtype)

  return project, output


class SpatialAttention(nn.Module):
  """Per-frame self-attention over the patch grid with 2-D RoPE, optionally reading reference tokens too.

  Params: wq, wk, wv [D, heads, head_dim], bq, bk, bv [heads, head_dim], wo [heads, head_dim, D], bo [D].
  """

  num_heads: int
  head_dim: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  implementation: str | tuple[str, ...] | None = None

  @nn.compact
  def __call__(self, x_bftd: jax.Array, ref_btd: jax.Array | None, rows_t: jax.Array, cols_t: jax.Array, *,
               rope_base: float) -> jax.Array:
    """Args:
      x_bftd: [B, F, T, D] (already normalised and modulated).
      ref_btd: [B, T, D] reference features, the same T grid, or None.
      rows_t, cols_t: [T] patch row and column of each token.
      rope_base: base of the 2-D rotary embedding.

    Returns:
      [B, F, T, D] in `dtype`.
    """
    b, f, t, d = x_bftd.shape
    project, output = _attention_weights(self, d, self.num_heads, self.head_dim)
    rope = lambda y_nthk: apply_rope_2d(y_nthk, rows_t, cols_t, base=rope_base)
    # Frames fold into the batch; that folded axis keeps the frames' split over "context", so no
    # constraint is put on it here (the batch rule alone would gather the frames).
    x_ntd = x_bftd.reshape(b * f, t, d)
    q_nthk = rope(project("q", x_ntd))
    k_nshk = rope(project("k", x_ntd))
    v_nshk = project("v", x_ntd)
    if ref_btd is not None:
      if ref_btd.shape != (b, t, d):
        raise ValueError(f"ref_btd must have shape {(b, t, d)} (one feature per token of a frame of x_bftd "
                         f"{x_bftd.shape}), got {ref_btd.shape}")
      # Projected once per example, then shared by its frames.
      spread = lambda y_bthk: jnp.broadcast_to(y_bthk[:, None], (b, f) + y_bthk.shape[1:]).reshape(
          (b * f,) + y_bthk.shape[1:])
      k_nshk = jnp.concatenate([k_nshk, spread(rope(project("k", ref_btd)))], axis=1)
      v_nshk = jnp.concatenate([v_nshk, spread(project("v", ref_btd))], axis=1)
    out_nthk = dot_product_attention(q_nthk, k_nshk, v_nshk, implementation=self.implementation,
                                     context_parallel=False)
    return output(out_nthk).reshape(b, f, t, d)


class TemporalAttention(nn.Module):
  """Self-attention across frames at each token position, 1-D RoPE over the frame index.

  Runs through `dot_product_attention` with context parallelism on: on a mesh whose "context" axis
  is larger than 1 the frames are split over it (F must be divisible by its size).

  Params: as `SpatialAttention`'s.
  """

  num_heads: int
  head_dim: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  implementation: str | tuple[str, ...] | None = None

  @nn.compact
  def __call__(self, x_bftd: jax.Array, *, rope_base: float) -> jax.Array:
    """[B, F, T, D] (normalised and modulated) -> [B, F, T, D] in `dtype`."""
    b, f, t, d = x_bftd.shape
    h, k = self.num_heads, self.head_dim
    project, output = _attention_weights(self, d, h, k)
    fold = lambda y_bfthk: y_bfthk.transpose(0, 2, 1, 3, 4).reshape(b * t, f, h, k)
    frames_nf = jnp.broadcast_to(jnp.arange(f, dtype=jnp.float32), (b * t, f))
    q_nfhk = constrain(apply_rope(fold(project("q", x_bftd)), frames_nf, base=rope_base), _Q_AXES)
    k_nfhk = constrain(apply_rope(fold(project("k", x_bftd)), frames_nf, base=rope_base), KV_AXES)
    v_nfhk = constrain(fold(project("v", x_bftd)), KV_AXES)
    out_nfhk = dot_product_attention(q_nfhk, k_nfhk, v_nfhk, implementation=self.implementation)
    out_bfthk = out_nfhk.reshape(b, t, f, h, k).transpose(0, 2, 1, 3, 4)
    return output(out_bfthk)


class VideoBlock(nn.Module):
  """x + gate * spatial(mod(LN x), ref), x + gate * temporal(mod(LN x)), x + gate * mlp(mod(LN x)).

  Params: modulation (9 vectors: shift, scale, gate for each sub-layer), spatial_attention,
  temporal_attention, mlp (fc_in, fc_out).
  """

  num_heads: int
  head_dim: int
  mlp_dim: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  implementation: str | tuple[str, ...] | None = None

  @nn.compact
  def __call__(self, x_bftd: jax.Array, c_bd: jax.Array, ref_btd: jax.Array | None, rows_t: jax.Array,
               cols_t: jax.Array, *, rope_base: float) -> jax.Array:
    """Args:
      x_bftd: [B, F, T, D] tokens.
      c_bd: [B, D] conditioning vector.
      ref_btd: [B, T, D] reference features for the spatial attention, or None.
      rows_t, cols_t: [T] patch row and column of each token.
      rope_base: base of both rotary embeddings.

    Returns:
      [B, F, T, D].
    """
    b, f, t, d = x_bftd.shape
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    attn_kw = dict(num_heads=self.num_heads, head_dim=self.head_dim, implementation=self.implementation, **kw)
    (shift_s, scale_s, gate_s, shift_t, scale_t, gate_t, shift_m, scale_m, gate_m) = Modulation(
        9, name="modulation", **kw)(c_bd)
    gated = lambda gate_bd, y_bftd: gate_bd[:, None, None, :] * y_bftd
    normed = lambda x, shift, scale: modulate(layer_norm(x, eps=LN_EPS), shift, scale)

    spatial = SpatialAttention(name="spatial_attention", **attn_kw)
    x_bftd = x_bftd + gated(gate_s, spatial(normed(x_bftd, shift_s, scale_s), ref_btd, rows_t, cols_t,
                                            rope_base=rope_base))
    x_bftd = constrain(x_bftd, VIDEO_AXES)
    temporal = TemporalAttention(name="temporal_attention", **attn_kw)
    x_bftd = x_bftd + gated(gate_t, temporal(normed(x_bftd, shift_t, scale_t), rope_base=rope_base))
    x_bftd = constrain(x_bftd, VIDEO_AXES)
    # The MLP works on [B, F*T, D]: frames major, so the sequence split stays the frames'.
    mlp = GeluMLP(self.mlp_dim, approximate=True, name="mlp", **kw)
    y_bftd = mlp(normed(x_bftd, shift_m, scale_m).reshape(b, f * t, d)).reshape(b, f, t, d)
    return constrain(x_bftd + gated(gate_m, y_bftd), VIDEO_AXES)


class ReferenceBlock(nn.Module):
  """The reference net's block: returns (next tokens, features), features = mod(LN x), its attention input.

  With `update=False` (the net's last block, whose output no one reads) only the features are
  computed: no attention or MLP parameters exist that could never receive a gradient.

  Params: modulation (6 vectors, 2 without update), spatial_attention and mlp with update.
  """

  num_heads: int
  head_dim: int
  mlp_dim: int
  update: bool = True
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  implementation: str | tuple[str, ...] | None = None

  @nn.compact
  def __call__(self, x_btd: jax.Array, c_bd: jax.Array, rows_t: jax.Array, cols_t: jax.Array, *,
               rope_base: float) -> tuple[jax.Array, jax.Array]:
    """[B, T, D] tokens, [B, D] conditioning -> ([B, T, D] tokens, [B, T, D] features)."""
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    if not self.update:
      shift_a, scale_a = Modulation(2, name="modulation", **kw)(c_bd)
      return x_btd, constrain(modulate(layer_norm(x_btd, eps=LN_EPS), shift_a, scale_a), IMAGE_AXES)
    shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = Modulation(6, name="modulation", **kw)(c_bd)
    features_btd = constrain(modulate(layer_norm(x_btd, eps=LN_EPS), shift_a, scale_a), IMAGE_AXES)
    spatial = SpatialAttention(self.num_heads, self.head_dim, implementation=self.implementation,
                               name="spatial_attention", **kw)
    x_btd = x_btd + gate_a[:, None, :] * spatial(features_btd[:, None], None, rows_t, cols_t, rope_base=rope_base)[:, 0]
    mlp = GeluMLP(self.mlp_dim, approximate=True, name="mlp", **kw)
    x_btd = x_btd + gate_m[:, None, :] * mlp(modulate(layer_norm(x_btd, eps=LN_EPS), shift_m, scale_m))
    return constrain(x_btd, IMAGE_AXES), features_btd

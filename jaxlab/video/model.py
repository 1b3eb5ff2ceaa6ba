"""The structural video denoiser: RGB, depth and normal videos denoised jointly, conditioned on a
reference image, pose maps, cameras and identity masks (Structural Video Diffusion, arXiv 2504.04126,
at small scale).

`VideoDenoiser(config)(x_bfhwc, sigma_b, cond)` predicts rectified-flow velocities v = eps - x0 for
the video x_bfhwc [B, F, H, W, C] (pixel space, values in [-1, 1]; C = channels_of(modalities),
modalities concatenated in the order of `jaxlab.video.modalities.MODALITIES`):

  1. x is split into its modalities.
  2. Identities (num_identities > 0): the identity vectors are painted onto the masks
     (`identity.IdentityEmbedding`) and, through one zero-initialised 3x3 convolution per modality,
     added to that modality's input: x~_m = x_m + zero_conv_m(E).
  3. Each modality is cut into p x p patches and embedded by its own `branch_<m>/patch_embed`;
     shared by all modalities, the pose guider (two 3x3 convolutions per frame on the pose maps,
     patchified, zero-initialised projection), the camera encoder (patchified Plücker maps, an
     MLP with a zero-initialised last layer) and a learned frame embedding are added to the tokens.
  4. Blocks (`blocks.VideoBlock`: spatial attention with reference keys, temporal attention, MLP,
     adaLN-Zero). With several modalities block 0 is per modality (`branch_<m>/block_first`),
     blocks 1..depth-2 are shared with the modalities stacked in the batch (`shared_block_<i>`)
     and the last block is per modality (`branch_<m>/block_last`), as the paper duplicates the
     first and last UNet stages into modality branches. With one modality the blocks are plain
     (`block_<i>`). A per-modality final adaLN and zero-initialised projection
     (`branch_<m>/final_modulation`, `branch_<m>/final_proj`) map the tokens back to patches.
  5. Reference net (`reference/...`, use_reference): the reference image's own patch embedding
     and `depth` `blocks.ReferenceBlock`s (spatial attention only) conditioned on sigma = 0;
     block l's modulated LayerNorm output (the input of its attention) is the extra keys and
     values of the denoiser's block l's spatial attention, for every modality.
  6. The noise level enters as c = MLP(sinusoidal(1000 sigma)) (`sigma_embed_0`, `sigma_embed_1`),
     as in `jaxlab.flow.dit`, modulating every block.

At initialisation the output is exactly zero (adaLN-Zero gates and zero final projections), and
the identity, pose and camera paths add exactly nothing until their zero layers learn.

Deviations from the paper, chosen for a small pixel-space model:
  * The backbone is a pixel-space spatio-temporal transformer (DiT-style patches, adaLN-Zero,
    2-D RoPE in space, 1-D RoPE over frames) trained by rectified flow (velocity eps - x0, see
    `jaxlab.video.objective`), not Stable Diffusion 1.5's latent U-Net with AnimateDiff motion
    modules trained with v-prediction and zero-terminal SNR; there is no VAE and no CLIP image
    encoder (the reference enters only through reference attention).
  * The reference net is a small transformer of `depth` spatial-only blocks rather than a copy
    of the U-Net; its per-block features are extra keys and values of the matching denoiser
    block, as the reference U-Net's are for the denoising U-Net's self-attention.
  * The modality branches duplicate the first and the last transformer block (plus the patch
    embedding and the output layer) instead of conv_in, the first down-block, the last up-block
    and conv_out.
  * Cameras enter as per-pixel Plücker maps, patchified and added to the tokens (a small
    CameraCtrl-like encoder without its temporal layers); the pose guider works on pixel-space
    pose maps at the patch grid instead of latent resolution.
  * Both stages of the paper's training are one model here: nothing is frozen by this module.

Config: `image_size` is the training resolution (an int for square frames or (height, width));
like DiT, the model runs at any size that is a multiple of patch_size, since positions are
relative. `num_frames` is the most frames a clip may have (the frame embedding's length).
"""

import dataclasses
import math
import numbers
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.nn import Dense, grid_positions, layer_norm
from jaxlab.nn.adaln import Modulation, modulate
from jaxlab.ops.registry import check_implementation
from jaxlab.sharding import axes
from jaxlab.sharding.annotate import constrain, param_with_axes
from jaxlab.video.blocks import IMAGE_AXES, LN_EPS, VIDEO_AXES, ReferenceBlock, VideoBlock
from jaxlab.video.identity import IdentityEmbedding
from jaxlab.video.modalities import MODALITY_CHANNELS, channels_of, check_modalities, split_modalities

# Sinusoidal features of the noise level, as in DDPM/DiT timestep embeddings.
_SIGMA_FEATURES = 256
_SIGMA_MAX_PERIOD = 10_000.0
# Channels of the pose guider's 3x3 convolutions (Animate Anyone's is 16-32-96-256 at latent scale).
_POSE_GUIDER_CHANNELS = (16, 32)
_POSE_CHANNELS = 3
_PLUCKER_CHANNELS = 6
_REFERENCE_CHANNELS = 3


def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True, kw_only=True)
class VideoDenoiserConfig:
  """Shape of a `VideoDenoiser`.

  Fields:
    image_size: training resolution: an int (square frames) or (height, width); both multiples
      of patch_size. Sets `example_inputs`; the model itself runs at any multiple of patch_size.
    num_frames: the most frames a clip may have (length of the learned frame embedding).
    patch_size: side of the square patch that becomes one token.
    width: token dimension.
    depth: number of blocks (also of the reference net's blocks); >= 3 with several modalities
      (first block per modality, depth - 2 shared, last block per modality).
    num_heads: attention heads; head_dim = width / num_heads must be divisible by 4 (2-D RoPE).
    mlp_ratio: MLP hidden size = round(width * mlp_ratio).
    modalities: denoised modalities, a subset of ("rgb", "depth", "normal") in that order,
      starting with "rgb" (`jaxlab.video.modalities.check_modalities`).
    num_identities: N identity slots with learned embeddings; 0 for none.
    identity_channels: size of each identity vector.
    use_pose, use_camera, use_reference: whether the model reads pose maps, Plücker maps and a
      reference image (and owns the pose guider, camera encoder and reference net).
    rope_theta: base of the spatial (2-D) and temporal (1-D) rotary embeddings.
    dtype: compute dtype; attention softmax and LayerNorm statistics stay float32.
    param_dtype: parameter dtype.
    attention_implementation: `jaxlab.ops.attention` implementation(s); None: the best available.
  """

  image_size: int | tuple[int, int]
  num_frames: int
  patch_size: int
  width: int
  depth: int
  num_heads: int
  mlp_ratio: float = 4.0
  modalities: tuple[str, ...] = ("rgb",)
  num_identities: int = 0
  identity_channels: int = 16
  use_pose: bool = True
  use_camera: bool = True
  use_reference: bool = True
  rope_theta: float = 100.0
  dtype: str | jnp.dtype = "float32"
  param_dtype: str | jnp.dtype = "float32"
  attention_implementation: str | tuple[str, ...] | None = None

  def __post_init__(self):
    set_ = lambda name, value: object.__setattr__(self, name, value)
    set_("attention_implementation", check_implementation(
        "VideoDenoiserConfig.attention_implementation", self.attention_implementation))
    try:
      set_("modalities", check_modalities(self.modalities))
    except ValueError as e:
      raise ValueError(f"VideoDenoiserConfig.modalities: {e}") from None
    size = self.image_size
    if isinstance(size, (tuple, list)):
      if len(size) != 2 or not all(_is_int(s) and s >= 1 for s in size):
        raise ValueError(f"VideoDenoiserConfig.image_size must be an int >= 1 or (height, width), got {size!r}.")
      set_("image_size", (int(size[0]), int(size[1])))
    elif not _is_int(size) or size < 1:
      raise ValueError(f"VideoDenoiserConfig.image_size must be an int >= 1 or (height, width), got {size!r}.")
    for name in ("num_frames", "patch_size", "width", "depth", "num_heads", "identity_channels"):
      value = getattr(self, name)
      if not _is_int(value) or value < 1:
        raise ValueError(f"VideoDenoiserConfig.{name} must be an int >= 1, got {value!r}.")
    if not _is_int(self.num_identities) or self.num_identities < 0:
      raise ValueError(f"VideoDenoiserConfig.num_identities must be an int >= 0, got {self.num_identities!r}.")
    for name in ("use_pose", "use_camera", "use_reference"):
      if not isinstance(getattr(self, name), bool):
        raise ValueError(f"VideoDenoiserConfig.{name} must be a bool, got {getattr(self, name)!r}.")
    if len(self.modalities) > 1 and self.depth < 3:
      raise ValueError(
          f"VideoDenoiserConfig.depth must be >= 3 with several modalities {self.modalities} (a first and a last "
          f"block per modality around the shared ones), got {self.depth}.")
    if self.width % self.num_heads:
      raise ValueError(f"VideoDenoiserConfig.width {self.width} is not divisible by num_heads {self.num_heads}.")
    if self.head_dim % 4:
      raise ValueError(
          f"VideoDenoiserConfig head_dim = width / num_heads = {self.head_dim} must be divisible by 4 for 2-D RoPE.")
    height, width = self.image_hw
    if height % self.patch_size or width % self.patch_size:
      raise ValueError(
          f"VideoDenoiserConfig.image_size {self.image_size} is not divisible by patch_size {self.patch_size}.")
    if not isinstance(self.mlp_ratio, numbers.Real) or not self.mlp_ratio > 0 or self.mlp_dim < 1:
      raise ValueError(
          f"VideoDenoiserConfig.mlp_ratio must be > 0 with width * mlp_ratio >= 1, got {self.mlp_ratio!r}.")
    if not isinstance(self.rope_theta, numbers.Real) or not self.rope_theta > 0:
      raise ValueError(f"VideoDenoiserConfig.rope_theta must be > 0, got {self.rope_theta!r}.")
    for name in ("dtype", "param_dtype"):
      value = getattr(self, name)
      try:
        floating = jnp.issubdtype(jnp.dtype(value), jnp.floating)
      except TypeError:
        floating = False
      if not floating:
        raise ValueError(f"VideoDenoiserConfig.{name} must name a floating dtype, got {value!r}.")

  @property
  def image_hw(self) -> tuple[int, int]:
    """(height, width) of the training resolution."""
    return self.image_size if isinstance(self.image_size, tuple) else (self.image_size, self.image_size)

  @property
  def head_dim(self) -> int:
    return self.width // self.num_heads

  @property
  def mlp_dim(self) -> int:
    return int(round(self.width * self.mlp_ratio))

  @property
  def channels(self) -> int:
    """Channels of x and of the predicted velocity: channels_of(modalities)."""
    return channels_of(self.modalities)


class VideoCondition(NamedTuple):
  """What the denoiser is conditioned on besides the noise level (a pytree; None fields are empty).

  Fields (B, F, H, W those of the video x_bfhwc):
    reference_bhwc: [B, H, W, 3] reference image in [-1, 1] (use_reference).
    pose_bfhwc: [B, F, H, W, 3] pose maps in [0, 1] (use_pose).
    plucker_bfhw6: [B, F, H, W, 6] Plücker ray maps (o x d, d) (use_camera).
    identity_bfhw: int [B, F, H, W] identity masks, 0 background, 1..N (num_identities > 0).
  """

  reference_bhwc: jax.Array | None = None
  pose_bfhwc: jax.Array | None = None
  plucker_bfhw6: jax.Array | None = None
  identity_bfhw: jax.Array | None = None


def example_inputs(config: VideoDenoiserConfig, batch_size: int = 1,
                   num_frames: int | None = None) -> tuple[jax.Array, jax.Array, VideoCondition]:
  """Zero inputs of the training resolution for `init` or `eval_shape`: (x_bfhwc, sigma_b, cond).

  The condition holds exactly the fields the config uses. num_frames defaults to config.num_frames.
  """
  b, f = batch_size, config.num_frames if num_frames is None else num_frames
  h, w = config.image_hw
  cond = VideoCondition(
      reference_bhwc=jnp.zeros((b, h, w, _REFERENCE_CHANNELS)) if config.use_reference else None,
      pose_bfhwc=jnp.zeros((b, f, h, w, _POSE_CHANNELS)) if config.use_pose else None,
      plucker_bfhw6=jnp.zeros((b, f, h, w, _PLUCKER_CHANNELS)) if config.use_camera else None,
      identity_bfhw=jnp.zeros((b, f, h, w), jnp.int32) if config.num_identities else None,
  )
  return jnp.zeros((b, f, h, w, config.channels)), jnp.zeros((b,)), cond


def patchify(x_bfhwc: jax.Array, p: int) -> jax.Array:
  """[..., H, W, C] -> [..., (H/p)(W/p), p*p*C], tokens row-major over the patch grid."""
  *lead, hh, ww, c = x_bfhwc.shape
  x = x_bfhwc.reshape(*lead, hh // p, p, ww // p, p, c)
  n = len(lead)
  x = jnp.moveaxis(x, n + 2, n + 1)  # [..., h, w, p, p, C]
  return x.reshape(*lead, (hh // p) * (ww // p), p * p * c)


def unpatchify(x_btf: jax.Array, p: int, hh: int, ww: int) -> jax.Array:
  """Inverse of `patchify`: [..., (H/p)(W/p), p*p*C] -> [..., H, W, C]."""
  *lead, _, features = x_btf.shape
  c = features // (p * p)
  x = x_btf.reshape(*lead, hh // p, ww // p, p, p, c)
  n = len(lead)
  x = jnp.moveaxis(x, n + 1, n + 2)  # [..., h, p, w, p, C]
  return x.reshape(*lead, hh, ww, c)


def _conv(features: int, name: str, dtype, param_dtype) -> nn.Conv:
  """A 3x3 'same' convolution whose (tiny) parameters are replicated."""
  return nn.Conv(features, (3, 3), padding="SAME", dtype=dtype, param_dtype=param_dtype,
                 kernel_init=param_with_axes(nn.initializers.lecun_normal(), (None, None, None, None)),
                 bias_init=param_with_axes(nn.initializers.zeros, (None,)), name=name)


class PoseGuider(nn.Module):
  """Pose maps -> tokens: 3x3 convolutions per frame (SiLU), patchified, zero-initialised projection.

  Params: conv_<i>/{kernel, bias}, proj/{kernel, bias} (zeros).
  """

  width: int
  patch_size: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, pose_bfhwc: jax.Array) -> jax.Array:
    """[B, F, H, W, 3] -> [B, F, T, width]."""
    b, f, hh, ww, c = pose_bfhwc.shape
    y = pose_bfhwc.reshape(b * f, hh, ww, c)
    for i, channels in enumerate(_POSE_GUIDER_CHANNELS):
      y = nn.silu(_conv(channels, f"conv_{i}", self.dtype, self.param_dtype)(y))
    patches_bftf = patchify(y.reshape(b, f, hh, ww, -1), self.patch_size)
    return Dense(self.width, (None, axes.EMBED), kernel_init=nn.initializers.zeros, dtype=self.dtype,
                 param_dtype=self.param_dtype, name="proj")(patches_bftf)


class CameraEncoder(nn.Module):
  """Plücker maps -> tokens: patchify, Dense, SiLU, zero-initialised Dense.

  Params: embed/{kernel, bias}, proj/{kernel, bias} (zeros).
  """

  width: int
  patch_size: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, plucker_bfhw6: jax.Array) -> jax.Array:
    """[B, F, H, W, 6] -> [B, F, T, width]."""
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    h = Dense(self.width, (None, axes.EMBED), name="embed", **kw)(patchify(plucker_bfhw6, self.patch_size))
    return Dense(self.width, (axes.EMBED, None), kernel_init=nn.initializers.zeros, name="proj", **kw)(nn.silu(h))


def _block_kwargs(cfg: VideoDenoiserConfig) -> dict:
  return dict(num_heads=cfg.num_heads, head_dim=cfg.head_dim, mlp_dim=cfg.mlp_dim, dtype=jnp.dtype(cfg.dtype),
              param_dtype=jnp.dtype(cfg.param_dtype), implementation=cfg.attention_implementation)


class ReferenceNet(nn.Module):
  """Reference image -> one [B, T, D] feature map per denoiser block.

  Params: patch_embed, block_<l> (`ReferenceBlock`; the last one computes features only).
  """

  config: VideoDenoiserConfig

  @nn.compact
  def __call__(self, reference_bhwc: jax.Array, c_bd: jax.Array, rows_t: jax.Array, cols_t: jax.Array
               ) -> tuple[jax.Array, ...]:
    cfg = self.config
    kw = _block_kwargs(cfg)
    x_btd = Dense(cfg.width, (None, axes.EMBED), dtype=kw["dtype"], param_dtype=kw["param_dtype"],
                  name="patch_embed")(patchify(reference_bhwc, cfg.patch_size))
    x_btd = constrain(x_btd, IMAGE_AXES)
    features = []
    for l in range(cfg.depth):
      block = ReferenceBlock(update=l < cfg.depth - 1, name=f"block_{l}", **kw)
      x_btd, features_btd = block(x_btd, c_bd, rows_t, cols_t, rope_base=float(cfg.rope_theta))
      features.append(features_btd)
    return tuple(features)


class ModalityBranch(nn.Module):
  """The layers one modality owns: patch embedding, first and last block (when branched), output layer.

  Params: patch_embed, block_first and block_last (`ends` only), final_modulation, final_proj (zeros).
  """

  config: VideoDenoiserConfig
  channels: int
  ends: bool

  def setup(self):
    cfg = self.config
    kw = _block_kwargs(cfg)
    dense_kw = dict(dtype=kw["dtype"], param_dtype=kw["param_dtype"])
    self.patch_embed = Dense(cfg.width, (None, axes.EMBED), **dense_kw)
    if self.ends:
      self.block_first = VideoBlock(**kw)
      self.block_last = VideoBlock(**kw)
    self.final_modulation = Modulation(2, **dense_kw)
    self.final_proj = Dense(cfg.patch_size ** 2 * self.channels, (axes.EMBED, None), kernel_init=nn.initializers.zeros,
                            **dense_kw)

  def embed(self, x_bfhwc: jax.Array) -> jax.Array:
    """[B, F, H, W, C_m] -> [B, F, T, D]."""
    return self.patch_embed(patchify(x_bfhwc, self.config.patch_size))

  def first(self, *args, **kwargs) -> jax.Array:
    return self.block_first(*args, **kwargs)

  def last(self, *args, **kwargs) -> jax.Array:
    return self.block_last(*args, **kwargs)

  def project(self, x_bftd: jax.Array, c_bd: jax.Array, hh: int, ww: int) -> jax.Array:
    """Final adaLN and projection: [B, F, T, D] -> [B, F, H, W, C_m] float32."""
    shift, scale = self.final_modulation(c_bd)
    out_bftf = self.final_proj(modulate(layer_norm(x_bftd, eps=LN_EPS), shift, scale))
    return unpatchify(out_bftf.astype(jnp.float32), self.config.patch_size, hh, ww)


class VideoDenoiser(nn.Module):
  """Maps a noisy video, its noise levels and its conditions to velocities of the same shape.

  Params: sigma_embed_0, sigma_embed_1, frame_embed [num_frames, D], identity (num_identities > 0:
  table, zero_conv_<m>/conv), pose_guider (use_pose), camera_encoder (use_camera), reference
  (use_reference: patch_embed, block_<l>), branch_<m> (patch_embed, final_modulation, final_proj;
  block_first, block_last with several modalities), shared_block_<i> for i in 1..depth-2 with
  several modalities, block_<i> for i < depth with one.
  """

  config: VideoDenoiserConfig

  @nn.compact
  def __call__(self, x_bfhwc: jax.Array, sigma_b: jax.Array, cond: VideoCondition | None) -> jax.Array:
    """Args:
      x_bfhwc: [B, F, H, W, C] noisy video, C = channels_of(modalities), F <= num_frames, H and W
        positive multiples of patch_size.
      sigma_b: [B] noise levels in [0, 1].
      cond: a `VideoCondition` with exactly the fields the config uses (None: no fields).

    Returns:
      [B, F, H, W, C] float32 velocities, modalities in the order of x's channels.

    Raises:
      ValueError: naming the field and the shapes, for a missing or unexpected condition, a shape
        that does not match x's, or identity labels outside [0, num_identities] (when concrete).
    """
    cfg = self.config
    cond = VideoCondition() if cond is None else cond
    sigma_b = jnp.asarray(sigma_b)
    _, f, hh, ww = self._check_inputs(x_bfhwc, sigma_b, cond)
    dtype, param_dtype = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
    kw = dict(dtype=dtype, param_dtype=param_dtype)
    p, d, names = cfg.patch_size, cfg.width, cfg.modalities
    rope_base = float(cfg.rope_theta)
    rows_t, cols_t = grid_positions(hh // p, ww // p)

    x_by_m = split_modalities(x_bfhwc, names)
    if cfg.num_identities:
      identity = IdentityEmbedding(cfg.num_identities, cfg.identity_channels,
                                   {m: MODALITY_CHANNELS[m] for m in names}, name="identity", **kw)
      added = identity(cond.identity_bfhw)
      x_by_m = {m: x_by_m[m] + added[m].astype(x_by_m[m].dtype) for m in names}

    embed_sigma = self._sigma_embedding(dtype, param_dtype)
    c_bd = embed_sigma(sigma_b)

    # Conditions shared by the modalities, added to each one's tokens.
    frame_init = param_with_axes(nn.initializers.normal(stddev=0.02), (None, axes.EMBED))
    frame_embed_nd = self.param("frame_embed", frame_init, (cfg.num_frames, d), param_dtype)
    extra_bftd = frame_embed_nd[:f].astype(dtype)[None, :, None, :]
    if cfg.use_pose:
      extra_bftd = extra_bftd + PoseGuider(d, p, name="pose_guider", **kw)(cond.pose_bfhwc)
    if cfg.use_camera:
      extra_bftd = extra_bftd + CameraEncoder(d, p, name="camera_encoder", **kw)(cond.plucker_bfhw6)

    branched = len(names) > 1
    branches = {m: ModalityBranch(cfg, MODALITY_CHANNELS[m], branched, name=f"branch_{m}") for m in names}
    tokens = {m: constrain(branches[m].embed(x_by_m[m]) + extra_bftd, VIDEO_AXES) for m in names}

    if cfg.use_reference:
      c_ref_bd = embed_sigma(jnp.zeros_like(sigma_b))
      refs = ReferenceNet(cfg, name="reference")(cond.reference_bhwc, c_ref_bd, rows_t, cols_t)
    else:
      refs = (None,) * cfg.depth
    geometry = (rows_t, cols_t)

    if not branched:
      (m,) = names
      x_bftd = tokens[m]
      for l in range(cfg.depth):
        x_bftd = VideoBlock(name=f"block_{l}", **_block_kwargs(cfg))(x_bftd, c_bd, refs[l], *geometry,
                                                                      rope_base=rope_base)
      tokens = {m: x_bftd}
    else:
      tokens = {m: branches[m].first(tokens[m], c_bd, refs[0], *geometry, rope_base=rope_base) for m in names}
      # The shared blocks see the modalities as more examples: [M * B, F, T, D].
      count = len(names)
      tile = lambda a: None if a is None else jnp.concatenate([a] * count, axis=0)
      x_bftd = jnp.concatenate([tokens[m] for m in names], axis=0)
      for l in range(1, cfg.depth - 1):
        x_bftd = VideoBlock(name=f"shared_block_{l}", **_block_kwargs(cfg))(x_bftd, tile(c_bd), tile(refs[l]),
                                                                             *geometry, rope_base=rope_base)
      parts = jnp.split(x_bftd, count, axis=0)
      tokens = {m: branches[m].last(part, c_bd, refs[-1], *geometry, rope_base=rope_base)
                for m, part in zip(names, parts)}

    return jnp.concatenate([branches[m].project(tokens[m], c_bd, hh, ww) for m in names], axis=-1)

  def _sigma_embedding(self, dtype, param_dtype):
    """sigma_b [B] -> c [B, D] = MLP(sinusoidal(1000 * sigma)), the same layers for every call."""
    width = self.config.width
    first = Dense(width, (None, axes.EMBED), dtype=dtype, param_dtype=param_dtype, name="sigma_embed_0")
    second = Dense(width, (axes.EMBED, None), dtype=dtype, param_dtype=param_dtype, name="sigma_embed_1")
    half = _SIGMA_FEATURES // 2
    freqs_f = jnp.exp(-math.log(_SIGMA_MAX_PERIOD) * jnp.arange(half, dtype=jnp.float32) / half)

    def embed(sigma_b: jax.Array) -> jax.Array:
      angles_bf = 1000.0 * sigma_b.astype(jnp.float32)[:, None] * freqs_f
      return second(nn.silu(first(jnp.concatenate([jnp.cos(angles_bf), jnp.sin(angles_bf)], axis=-1))))

    return embed

  def _check_inputs(self, x_bfhwc, sigma_b, cond) -> tuple[int, int, int, int]:
    cfg = self.config
    if not isinstance(cond, VideoCondition):
      raise ValueError(f"cond must be a VideoCondition, got {type(cond).__name__}.")
    if x_bfhwc.ndim != 5 or x_bfhwc.shape[-1] != cfg.channels:
      raise ValueError(f"x_bfhwc must be [batch, frames, H, W, {cfg.channels}] (modalities {cfg.modalities}), "
                       f"got shape {x_bfhwc.shape}.")
    b, f, hh, ww, _ = x_bfhwc.shape
    if not 1 <= f <= cfg.num_frames:
      raise ValueError(f"x_bfhwc has {f} frames (shape {x_bfhwc.shape}); the model takes 1 to num_frames = "
                       f"{cfg.num_frames}.")
    if hh % cfg.patch_size or ww % cfg.patch_size or hh == 0 or ww == 0:
      raise ValueError(f"Frame height {hh} and width {ww} (x_bfhwc {x_bfhwc.shape}) must be positive multiples "
                       f"of patch_size {cfg.patch_size}.")
    if sigma_b.shape != (b,):
      raise ValueError(f"sigma_b must have shape ({b},) (one noise level per video of x_bfhwc {x_bfhwc.shape}), "
                       f"got {sigma_b.shape}.")
    fields = (
        ("reference_bhwc", cfg.use_reference, "use_reference=True", (b, hh, ww, _REFERENCE_CHANNELS)),
        ("pose_bfhwc", cfg.use_pose, "use_pose=True", (b, f, hh, ww, _POSE_CHANNELS)),
        ("plucker_bfhw6", cfg.use_camera, "use_camera=True", (b, f, hh, ww, _PLUCKER_CHANNELS)),
        ("identity_bfhw", cfg.num_identities > 0, f"num_identities={cfg.num_identities}", (b, f, hh, ww)),
    )
    for name, used, setting, want in fields:
      value = getattr(cond, name)
      if used and value is None:
        raise ValueError(f"cond.{name} is missing: the config reads it ({setting}).")
      if not used and value is not None:
        raise ValueError(f"cond.{name} was given but the config does not read it; pass None or enable it.")
      if used and tuple(value.shape) != want:
        raise ValueError(f"cond.{name} has shape {tuple(value.shape)} but x_bfhwc has shape {x_bfhwc.shape}: "
                         f"{name} must have shape {want}.")
    if cfg.num_identities and not jnp.issubdtype(cond.identity_bfhw.dtype, jnp.integer):
      raise ValueError(f"cond.identity_bfhw must hold integer labels, got dtype {cond.identity_bfhw.dtype}.")
    return b, f, hh, ww

"""2D image augmentations for visuomotor policies (the "2D augmentation" baseline); pure JAX.

Each image of a batch `[..., H, W, 3]` (every camera of every sample) gets its own random
parameters, in this order:

  geometry  output pixel c + z R(theta) v + t shows input pixel c + v, where c is the image
            centre, z a zoom (z > 1 is crop-and-resize into the image), theta a rotation and
            t a shift in pixels; bilinear sampling, edges replicated outside the image.
  colour    brightness gain, contrast (blend with the image's mean grey), saturation (blend
            with the pixel's grey) and a per-channel gain (a cheap stand-in for hue), clipped
            to [0, 1].

The output has the input's dtype (uint8 is rounded back). With every range zero, all factors
are exactly 1 and all offsets exactly 0, so the images come back bit for bit.
"""

import dataclasses
import math
from collections.abc import Callable

import flax.struct
import jax
import jax.numpy as jnp

# ITU-R BT.601 luma weights, the usual greyscale for saturation and contrast.
_LUMA_3 = (0.299, 0.587, 0.114)


@dataclasses.dataclass(frozen=True, kw_only=True)
class AugmentSettings:
  """Half-widths of the uniform ranges each image's parameters are drawn from.

  Fields:
    shift: translation, as a fraction of the image width (x) and height (y), each axis
      drawn independently in [-shift, shift].
    scale: zoom factor in [1 - scale, 1 + scale] (above 1: crop-and-resize).
    rotation_degrees: rotation about the image centre in [-r, r] degrees.
    brightness: multiplicative gain in [1 - b, 1 + b].
    contrast: contrast factor in [1 - c, 1 + c].
    saturation: saturation factor in [1 - s, 1 + s].
    channel_gain: per-channel (R, G, B) gain, each in [1 - g, 1 + g].
  """

  shift: float = 0.08
  scale: float = 0.08
  rotation_degrees: float = 5.0
  brightness: float = 0.2
  contrast: float = 0.2
  saturation: float = 0.2
  channel_gain: float = 0.05

  def __post_init__(self):
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"AugmentSettings.{field.name} must be a finite number >= 0, got {value!r}.")
    for name in ("scale", "brightness", "contrast", "saturation", "channel_gain"):
      if getattr(self, name) >= 1.0:
        raise ValueError(f"AugmentSettings.{name} must be < 1 (its factor would reach 0), got {getattr(self, name)!r}.")
    if self.shift > 0.5:
      raise ValueError(f"AugmentSettings.shift must be <= 0.5 (a fraction of the image size), got {self.shift!r}.")

  @classmethod
  def none(cls) -> "AugmentSettings":
    """Every range zero: augmentation is the identity."""
    return cls(shift=0.0, scale=0.0, rotation_degrees=0.0, brightness=0.0, contrast=0.0, saturation=0.0,
               channel_gain=0.0)


@flax.struct.dataclass
class AugmentParams:
  """Per-image parameters for N images.

  Attributes:
    shift_n2: translation (x, y) as fractions of the image width and height.
    zoom_n: zoom factor (1: none).
    angle_n: rotation in radians (positive turns content from +x towards +y, i.e. clockwise on
      screen, since image y points down).
    brightness_n, contrast_n, saturation_n: factors (1: none).
    gain_n3: per-channel gains (1: none).
  """

  shift_n2: jax.Array
  zoom_n: jax.Array
  angle_n: jax.Array
  brightness_n: jax.Array
  contrast_n: jax.Array
  saturation_n: jax.Array
  gain_n3: jax.Array

  @classmethod
  def identity(cls, num_images: int) -> "AugmentParams":
    ones, zeros = jnp.ones((num_images,)), jnp.zeros((num_images,))
    return cls(shift_n2=jnp.zeros((num_images, 2)), zoom_n=ones, angle_n=zeros, brightness_n=ones, contrast_n=ones,
               saturation_n=ones, gain_n3=jnp.ones((num_images, 3)))


def sample_augment_params(rng: jax.Array, num_images: int, settings: AugmentSettings) -> AugmentParams:
  """Draws independent parameters for `num_images` images (deterministic given `rng`)."""
  keys = jax.random.split(rng, 7)

  def around(key, half, shape, center):
    return center + jax.random.uniform(key, shape, minval=-half, maxval=half) if half else jnp.full(shape, center,
                                                                                                  jnp.float32)

  n = num_images
  return AugmentParams(
      shift_n2=around(keys[0], settings.shift, (n, 2), 0.0),
      zoom_n=around(keys[1], settings.scale, (n,), 1.0),
      angle_n=around(keys[2], math.radians(settings.rotation_degrees), (n,), 0.0),
      brightness_n=around(keys[3], settings.brightness, (n,), 1.0),
      contrast_n=around(keys[4], settings.contrast, (n,), 1.0),
      saturation_n=around(keys[5], settings.saturation, (n,), 1.0),
      gain_n3=around(keys[6], settings.channel_gain, (n, 3), 1.0),
  )


def _warp(image_hw3: jax.Array, shift_2: jax.Array, zoom: jax.Array, angle: jax.Array) -> jax.Array:
  """Bilinear inverse warp of one float image; out-of-image samples take the nearest edge pixel."""
  h, w, _ = image_hw3.shape
  cx, cy = (w - 1) / 2, (h - 1) / 2
  ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij")
  # Centred output coordinates minus the shift, rotated back by -angle and unzoomed. At identity
  # every factor is exactly 1 or 0, so the source coordinates are the integer pixels themselves.
  ux, uy = xs - cx - shift_2[0] * w, ys - cy - shift_2[1] * h
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  src_x = (cos * ux + sin * uy) / zoom + cx
  src_y = (cos * uy - sin * ux) / zoom + cy
  x0, y0 = jnp.floor(src_x), jnp.floor(src_y)
  wx, wy = (src_x - x0)[..., None], (src_y - y0)[..., None]
  x0i = jnp.clip(x0.astype(jnp.int32), 0, w - 1)
  x1i = jnp.clip(x0.astype(jnp.int32) + 1, 0, w - 1)
  y0i = jnp.clip(y0.astype(jnp.int32), 0, h - 1)
  y1i = jnp.clip(y0.astype(jnp.int32) + 1, 0, h - 1)
  top = image_hw3[y0i, x0i] * (1 - wx) + image_hw3[y0i, x1i] * wx
  bottom = image_hw3[y1i, x0i] * (1 - wx) + image_hw3[y1i, x1i] * wx
  return top * (1 - wy) + bottom * wy


def _colour(image_hw3: jax.Array, brightness, contrast, saturation, gain_3) -> jax.Array:
  """Colour jitter of one float image in [0, 1]; blends written as x*f + m*(1-f) so f=1 is exact."""
  luma_3 = jnp.asarray(_LUMA_3, jnp.float32)
  x = image_hw3 * brightness
  mean_grey = jnp.mean(x @ luma_3)
  x = x * contrast + mean_grey * (1 - contrast)
  grey_hw1 = (x @ luma_3)[..., None]
  x = x * saturation + grey_hw1 * (1 - saturation)
  return jnp.clip(x * gain_3, 0.0, 1.0)


def _check_images(images: jax.Array) -> None:
  if images.ndim < 3 or images.shape[-1] != 3:
    raise ValueError(f"images must be [..., H, W, 3], got shape {images.shape}.")
  if not (images.dtype == jnp.uint8 or jnp.issubdtype(images.dtype, jnp.floating)):
    raise ValueError(f"images must be uint8 or floating, got {images.dtype}.")


def apply_augment_params(images: jax.Array, params: AugmentParams) -> jax.Array:
  """Augments `images` [..., H, W, 3] (uint8 or float in [0, 1]) with N = prod(...) parameter sets."""
  _check_images(images)
  lead, (h, w) = images.shape[:-3], images.shape[-3:-1]
  n = math.prod(lead)
  if params.zoom_n.shape != (n,):
    raise ValueError(f"params hold {params.zoom_n.shape} images' parameters, images hold {n} ({images.shape}).")
  is_uint8 = images.dtype == jnp.uint8
  x_nhw3 = images.reshape(n, h, w, 3).astype(jnp.float32)
  if is_uint8:
    x_nhw3 = x_nhw3 / 255.0

  def one(image_hw3, p):
    warped = _warp(image_hw3, p.shift_n2, p.zoom_n, p.angle_n)
    return _colour(warped, p.brightness_n, p.contrast_n, p.saturation_n, p.gain_n3)

  out_nhw3 = jax.vmap(one)(x_nhw3, params)
  if is_uint8:
    return jnp.round(out_nhw3 * 255.0).astype(jnp.uint8).reshape(images.shape)
  return out_nhw3.astype(images.dtype).reshape(images.shape)


def augment_images(rng: jax.Array, images: jax.Array, settings: AugmentSettings) -> jax.Array:
  """Random 2D augmentation, independent per image of `images` [..., H, W, 3]; same dtype out."""
  _check_images(images)
  n = math.prod(images.shape[:-3])
  return apply_augment_params(images, sample_augment_params(rng, n, settings))


def make_augment(settings: AugmentSettings) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """`(rng, images) -> images` for `make_policy_train_step(..., augment=...)`."""
  return lambda rng, images: augment_images(rng, images, settings)

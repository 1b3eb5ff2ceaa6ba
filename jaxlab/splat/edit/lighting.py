"""Lighting edit: a scene-wide per-channel gain and offset plus per-Gaussian colour noise.

The DC coefficient is turned into an RGB colour, edited as

    rgb <- clip(clip(clip(a * rgb) + b) + n)        (each clip into [0, 1])

and turned back; view-dependent SH (degree >= 1) are left as they are. One gain a and
offset b per colour channel for the whole scene, noise n per Gaussian and channel.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.splat.gaussians import Gaussians
from jaxlab.splat.sh import rgb_to_sh_dc, sh_dc_to_rgb


@dataclasses.dataclass(frozen=True)
class LightingRanges:
  """Where lighting edits are drawn from.

  Attributes:
    gain: (low, high) of the uniform per-channel gain a.
    offset: (low, high) of the uniform per-channel offset b.
    noise_std: standard deviation of the per-Gaussian, per-channel normal noise n.
  """

  gain: tuple[float, float] = (0.3, 1.8)
  offset: tuple[float, float] = (-0.3, 0.3)
  noise_std: float = 0.1

  def __post_init__(self):
    for name in ("gain", "offset"):
      bounds = getattr(self, name)
      if len(bounds) != 2 or not bounds[0] <= bounds[1]:
        raise ValueError(f"LightingRanges.{name} must be (low, high) with low <= high; got {bounds!r}")
    if not self.noise_std >= 0:
      raise ValueError(f"LightingRanges.noise_std must be >= 0; got {self.noise_std!r}")


def sample_lighting(
    rng: jax.Array, num_gaussians: int, ranges: LightingRanges = LightingRanges(),
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Draws one lighting edit: (gain_3, offset_3, noise_n3), float32.

  Args:
    rng: a jax PRNG key.
    num_gaussians: N, rows of the noise (static).
    ranges: the distributions.
  """
  if isinstance(num_gaussians, bool) or not isinstance(num_gaussians, (int, np.integer)) or num_gaussians < 0:
    raise ValueError(f"num_gaussians must be an int >= 0; got {num_gaussians!r}")
  gain_rng, offset_rng, noise_rng = jax.random.split(rng, 3)
  gain_3 = jax.random.uniform(gain_rng, (3,), jnp.float32, *ranges.gain)
  offset_3 = jax.random.uniform(offset_rng, (3,), jnp.float32, *ranges.offset)
  noise_n3 = ranges.noise_std * jax.random.normal(noise_rng, (int(num_gaussians), 3), jnp.float32)
  return gain_3, offset_3, noise_n3


def relight(
    gaussians: Gaussians,
    gain_3: jax.Array,
    offset_3: jax.Array,
    noise_n3: jax.Array,
    mask_n: jax.Array | None = None,
) -> Gaussians:
  """The Gaussians with their DC colour edited by gain, offset and noise (see the module doc).

  Args:
    gaussians: N Gaussians.
    gain_3, offset_3: [3] per-channel a and b.
    noise_n3: [N, 3] per-Gaussian n.
    mask_n: [N] bool, the Gaussians to edit; None = the active ones. Others keep their SH.

  Returns:
    Gaussians whose edited DC colours lie in [0, 1]; higher SH, geometry and opacity unchanged.
  """
  num = gaussians.num
  for name, value, shape in (("gain_3", gain_3, (3,)), ("offset_3", offset_3, (3,)), ("noise_n3", noise_n3, (num, 3))):
    if np.shape(value) != shape:
      raise ValueError(f"relight: {name} must have shape {list(shape)}; got {list(np.shape(value))}")
  if mask_n is None:
    mask_n = gaussians.active
  elif np.shape(mask_n) != (num,):
    raise ValueError(f"relight: mask_n must have shape [{num}]; got {list(np.shape(mask_n))}")
  dtype = gaussians.sh.dtype
  return _relight(gaussians, *(jnp.asarray(v, dtype) for v in (gain_3, offset_3, noise_n3)),
                  jnp.asarray(mask_n, jnp.bool_))


@jax.jit
def _relight(gaussians, gain_3, offset_3, noise_n3, mask_n) -> Gaussians:
  """`relight` on checked inputs, as one compiled program."""
  dc_n3 = gaussians.sh[:, 0, :]
  rgb_n3 = jnp.clip(sh_dc_to_rgb(dc_n3) * gain_3, 0.0, 1.0)
  rgb_n3 = jnp.clip(rgb_n3 + offset_3, 0.0, 1.0)
  rgb_n3 = jnp.clip(rgb_n3 + noise_n3, 0.0, 1.0)
  new_dc_n3 = jnp.where(mask_n[:, None], rgb_to_sh_dc(rgb_n3), dc_n3)
  return gaussians.replace(sh=gaussians.sh.at[:, 0, :].set(new_dc_n3))

"""adaLN-Zero: the modulation starts at zero, and `modulate` broadcasts [B, D] over any middle axes."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.nn import Modulation, modulate


def test_modulation_starts_at_zero_and_follows_c_after_training():
  c_bd = jax.random.normal(jax.random.key(0), (2, 8))
  module = Modulation(3)
  params = nn.unbox(module.init(jax.random.key(1), c_bd))
  outs = module.apply(params, c_bd)
  assert len(outs) == 3 and all(o.shape == (2, 8) for o in outs)
  assert all(float(jnp.abs(o).max()) == 0.0 for o in outs)
  kernel = jax.random.normal(jax.random.key(2), params["params"]["kernel"].shape)
  moved = module.apply({"params": {"kernel": kernel, "bias": params["params"]["bias"]}}, c_bd)
  expected = np.einsum("bd,dne->bne", np.asarray(jax.nn.silu(c_bd)), np.asarray(kernel))
  np.testing.assert_allclose(np.asarray(moved[1]), expected[:, 1], rtol=1e-5, atol=1e-5)


def test_modulate_broadcasts_over_middle_axes():
  x = jax.random.normal(jax.random.key(0), (2, 3, 4, 5))
  shift, scale = jnp.arange(10.0).reshape(2, 5), -jnp.arange(10.0).reshape(2, 5) / 10
  out = np.asarray(modulate(x, shift, scale))
  for b in range(2):
    np.testing.assert_allclose(out[b], np.asarray(x[b]) * (1 + np.asarray(scale[b])) + np.asarray(shift[b]),
                               rtol=1e-6)

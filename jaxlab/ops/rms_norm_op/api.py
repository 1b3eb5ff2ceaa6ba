"""Public RMSNorm op: `rms_norm`, dispatched to XLA or a Pallas (Triton) kernel."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxlab.ops import registry
from jaxlab.ops.rms_norm_op.reference import check_rounding, rms_norm_reference
from kernels_pallas.rms_norm.config import MAX_BLOCK_COLS, RmsNormBlockConfig

_KERNEL_DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)


def _xla(x, scale, *, eps, rounding, block_config, interpret):
  del block_config, interpret  # Launch settings mean nothing to XLA.
  return rms_norm_reference(x, scale, eps=eps, rounding=rounding)


def _pallas_triton(x, scale, *, eps, rounding, block_config, interpret):
  registry.require_platform("pallas_triton", interpret=interpret)
  for name, array in (("x", x), ("scale", scale)):
    if array.dtype not in _KERNEL_DTYPES:
      raise NotImplementedError(f"pallas_triton supports float32/bfloat16/float16 {name}, got {array.dtype}")
  row_length = x.shape[-1]
  num_rows = math.prod(x.shape[:-1])
  if num_rows == 0 or row_length == 0:
    raise NotImplementedError(f"pallas_triton needs a non-empty input, got shape {x.shape}")
  if RmsNormBlockConfig.block_cols(row_length) > MAX_BLOCK_COLS:
    raise NotImplementedError(
        f"pallas_triton holds a whole row per tile; row length {row_length} pads past {MAX_BLOCK_COLS} columns"
    )
  config = block_config or RmsNormBlockConfig.heuristic(row_length, num_rows)
  kernel = registry.load_kernel("pallas_triton", "kernels_pallas.rms_norm.triton")
  y_md = kernel.rms_norm_rows(x.reshape(num_rows, row_length), scale, eps, rounding, config, interpret)
  return y_md.reshape(x.shape)


_RMS_NORM = registry.Op("rms_norm", {"xla": _xla, "pallas_triton": _pallas_triton})


def _check_arguments(x, scale, rounding, block_config) -> None:
  if x.ndim < 1:
    raise ValueError(f"rms_norm needs x with at least one axis, got shape {x.shape}")
  if scale.shape != x.shape[-1:]:
    raise ValueError(f"rms_norm needs scale of shape {x.shape[-1:]} (x's last axis), got {scale.shape}")
  check_rounding(rounding)
  if block_config is not None and not isinstance(block_config, RmsNormBlockConfig):
    raise ValueError(f"block_config must be an RmsNormBlockConfig or None, got {type(block_config).__name__}")


def rms_norm(
    x: jax.Array,
    scale: jax.Array,
    *,
    eps: float = 1e-6,
    rounding: str = "float32",
    implementation: registry.ImplementationArg = None,
    interpret: bool = False,
    block_config: RmsNormBlockConfig | None = None,
) -> jax.Array:
  """RMSNorm over the last axis: y = x * rsqrt(mean(x^2) + eps) * scale.

  The normalization runs in float32 whatever the input dtype; the output has x's dtype. Works under
  `jax.jit`, `jax.grad` and `jax.vmap`; kernel implementations carry their own backward.

  Args:
    x: [..., D] input; any number of leading axes.
    scale: [D] per-feature gain.
    eps: added to the mean square; a Python float.
    rounding: "float32" multiplies by scale in float32 and rounds once; "transformers" rounds
      x * rsqrt(...) to x's dtype first and multiplies by scale in x's dtype, bit for bit as
      transformers' Llama-family RMSNorm (the two differ only for bfloat16 / float16 x).
    implementation: None (best available on `jax.default_backend()`), one of
      `registry.IMPLEMENTATIONS`, or a sequence of them tried in order.
    interpret: run Pallas implementations in the Pallas interpreter (any backend, slow).
    block_config: kernel launch settings; None picks `RmsNormBlockConfig.heuristic`.

  Returns:
    [..., D] array with x's dtype.

  Raises:
    ValueError: bad shapes, an unknown rounding, or an unknown implementation name.
    registry.NoImplementationError: no requested implementation could serve the call.
  """
  _check_arguments(x, scale, rounding, block_config)
  return _RMS_NORM(
      x, scale, eps=float(eps), rounding=rounding, block_config=block_config, implementation=implementation,
      interpret=interpret,
  )


def resolve_rms_norm(
    x: jax.Array | jax.ShapeDtypeStruct,
    scale: jax.Array | jax.ShapeDtypeStruct,
    *,
    eps: float = 1e-6,
    rounding: str = "float32",
    implementation: registry.ImplementationArg = None,
    interpret: bool = False,
    block_config: RmsNormBlockConfig | None = None,
) -> str:
  """Name of the implementation `rms_norm` would run for these arguments; runs nothing."""
  _check_arguments(x, scale, rounding, block_config)
  return _RMS_NORM.resolve(
      x, scale, eps=float(eps), rounding=rounding, block_config=block_config, implementation=implementation,
      interpret=interpret,
  )

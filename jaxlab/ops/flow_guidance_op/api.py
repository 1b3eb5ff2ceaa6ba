"""Public HiFlow guidance op: `flow_guidance`, dispatched to XLA or a Pallas (Triton) kernel.

On the Pallas path the Butterworth low-pass (FFT, mask, inverse FFT) runs here in XLA and the
kernel does the elementwise rest; the Haar path is one kernel end to end.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from jaxlab.ops import registry
from jaxlab.ops.flow_guidance_op.reference import (
    SIGMA_EPS,
    FlowGuidanceOutput,
    flow_guidance_reference,
    lowpass_difference,
)
from jaxlab.ops.flow_guidance_op.spectral import LOWPASS_KINDS
from kernels_pallas.flow_guidance.config import MAX_CHANNEL_BLOCK, FlowGuidanceConfig, next_power_of_two

_KERNEL_DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)
_ARRAY_NAMES = ("x_t", "v", "x0_ref", "v_prev", "v_ref_prev")
_SCALAR_NAMES = ("sigma", "sigma_next", "alpha", "beta")
_KERNEL_MODULE = "kernels_pallas.flow_guidance.triton"


def _xla(x_t, v, x0_ref, v_prev, v_ref_prev, scalars_4, *, lowpass, cutoff, order, config, interpret):
  del config, interpret  # Launch settings mean nothing to XLA.
  sigma, sigma_next, alpha, beta = (scalars_4[i] for i in range(4))
  return flow_guidance_reference(
      x_t, v, x0_ref, v_prev, v_ref_prev, sigma=sigma, sigma_next=sigma_next, alpha=alpha, beta=beta,
      lowpass=lowpass, cutoff=cutoff, order=order,
  )


def _pallas_triton(x_t, v, x0_ref, v_prev, v_ref_prev, scalars_4, *, lowpass, cutoff, order, config, interpret):
  registry.require_platform("pallas_triton", interpret=interpret)
  for name, array in zip(_ARRAY_NAMES, (x_t, v, x0_ref, v_prev, v_ref_prev)):
    if array is not None and array.dtype not in _KERNEL_DTYPES:
      raise NotImplementedError(f"pallas_triton supports float32/bfloat16/float16 {name}, got {array.dtype}")
  if x_t.size == 0:
    raise NotImplementedError(f"pallas_triton needs a non-empty latent, got shape {x_t.shape}")
  if lowpass == "dwt" and next_power_of_two(x_t.shape[-1]) > MAX_CHANNEL_BLOCK:
    raise NotImplementedError(
        f"pallas_triton holds a pixel's channels in one tile; C={x_t.shape[-1]} pads past {MAX_CHANNEL_BLOCK}"
    )
  if lowpass == "fft":
    return _pallas_triton_fft(x_t, v, x0_ref, v_prev, v_ref_prev, scalars_4, cutoff=cutoff, order=order,
                              config=config, interpret=interpret)
  kernel = registry.load_kernel("pallas_triton", _KERNEL_MODULE)
  outputs = kernel.flow_guidance_dwt(x_t, v, x0_ref, v_prev, v_ref_prev, scalars_4, sigma_eps=SIGMA_EPS,
                                     config=config, interpret=interpret)
  return FlowGuidanceOutput(*outputs)


def _pallas_triton_fft(x_t, v, x0_ref, v_prev, v_ref_prev, scalars_4, *, cutoff, order, config, interpret):
  """Butterworth-guided step: XLA low-passes d = x0_ref - x0_hat, the kernel's `guided_update` does the rest."""
  kernel = registry.load_kernel("pallas_triton", _KERNEL_MODULE)
  lp = lowpass_difference(x_t, v, x0_ref, sigma=scalars_4[_SCALAR_NAMES.index("sigma")], lowpass="fft",
                          cutoff=cutoff, order=order)
  config = config or FlowGuidanceConfig.heuristic(x_t.shape, "fft")
  outputs = kernel.guided_update(x_t, v, x0_ref, lp, v_prev, v_ref_prev, scalars_4, sigma_eps=SIGMA_EPS,
                                 config=config, interpret=interpret)
  return FlowGuidanceOutput(*outputs)


_FLOW_GUIDANCE = registry.Op("flow_guidance", {"xla": _xla, "pallas_triton": _pallas_triton})


def _check_arrays(arrays: dict) -> None:
  for name, array in arrays.items():
    if array is None:
      continue
    if not hasattr(array, "shape") or not hasattr(array, "dtype"):
      raise TypeError(f"flow_guidance needs {name} as an array, got {type(array).__name__}")
    if len(array.shape) != 4:
      raise ValueError(f"flow_guidance needs {name} as a 4-D [B, H, W, C] array, got shape {tuple(array.shape)}")
    if not jnp.issubdtype(array.dtype, jnp.floating):
      raise TypeError(f"flow_guidance needs {name} with a floating dtype, got {array.dtype}")
  shape = tuple(arrays["x_t"].shape)
  for name, array in arrays.items():
    if array is not None and tuple(array.shape) != shape:
      raise ValueError(f"flow_guidance needs {name} of x_t's shape {shape}, got {tuple(array.shape)}")
  if (arrays["v_prev"] is None) != (arrays["v_ref_prev"] is None):
    given, missing = ("v_prev", "v_ref_prev") if arrays["v_ref_prev"] is None else ("v_ref_prev", "v_prev")
    raise ValueError(f"flow_guidance got {given} without {missing}; the acceleration term needs both (or neither)")


def _check_scalar(name: str, value) -> None:
  if isinstance(value, bool):
    raise TypeError(f"flow_guidance needs {name} as a float or a 0-d array, got a bool")
  if isinstance(value, numbers.Real):
    return
  if not hasattr(value, "shape") or not hasattr(value, "dtype"):
    raise TypeError(f"flow_guidance needs {name} as a float or a 0-d array, got {type(value).__name__}")
  if tuple(value.shape) != ():
    raise ValueError(f"flow_guidance needs {name} as a 0-d array, got shape {tuple(value.shape)}")


def _check_arguments(arrays: dict, scalars: dict, *, lowpass, cutoff, order, config) -> None:
  """Raises ValueError/TypeError naming the first bad argument; runs no compute."""
  _check_arrays(arrays)
  for name, value in scalars.items():
    _check_scalar(name, value)
  if lowpass not in LOWPASS_KINDS:
    raise ValueError(f"unknown lowpass {lowpass!r}; choose one of {', '.join(map(repr, LOWPASS_KINDS))}")
  _, height, width, _ = arrays["x_t"].shape
  if lowpass == "dwt" and (height % 2 or width % 2):
    raise ValueError(f"lowpass='dwt' needs even H and W (2x2 Haar blocks), got H={height}, W={width}")
  if isinstance(cutoff, bool) or not isinstance(cutoff, numbers.Real) or not cutoff > 0:
    raise ValueError(f"flow_guidance needs cutoff > 0 (a Python number), got {cutoff!r}")
  if isinstance(order, bool) or not isinstance(order, numbers.Real) or not order >= 1:
    raise ValueError(f"flow_guidance needs order >= 1 (a Python number), got {order!r}")
  if config is not None and not isinstance(config, FlowGuidanceConfig):
    raise TypeError(f"config must be a FlowGuidanceConfig or None, got {type(config).__name__}")


def _prepare(x_t, v, x0_ref, v_prev, v_ref_prev, scalars: dict, *, lowpass, cutoff, order, config) -> dict:
  """Checks every argument; returns the static keyword arguments of the implementations."""
  arrays = dict(zip(_ARRAY_NAMES, (x_t, v, x0_ref, v_prev, v_ref_prev)))
  _check_arguments(arrays, scalars, lowpass=lowpass, cutoff=cutoff, order=order, config=config)
  return dict(lowpass=lowpass, cutoff=float(cutoff), order=order, config=config)


def flow_guidance(
    x_t: jax.Array,
    v: jax.Array,
    x0_ref: jax.Array,
    v_prev: jax.Array | None = None,
    v_ref_prev: jax.Array | None = None,
    *,
    sigma,
    sigma_next,
    alpha,
    beta,
    lowpass: str = "fft",
    cutoff: float = 0.2,
    order: int = 4,
    implementation: registry.ImplementationArg = None,
    interpret: bool = False,
    config: FlowGuidanceConfig | None = None,
) -> FlowGuidanceOutput:
  """One HiFlow guided Euler step of a rectified flow, from noise level sigma to sigma_next.

  The model's clean estimate x0_hat = x_t - sigma * v is pulled towards the reference's low
  frequencies, x0_g = x0_hat + alpha * LP(x0_ref - x0_hat); the velocity that lands on x0_g
  is optionally moved (weight beta) towards the previous step's velocity shifted by how the
  reference velocity changed since; then x_next = x_t + (sigma_next - sigma) * v_g. The exact
  formulas are in `reference.flow_guidance_reference`.

  Args:
    x_t: [B, H, W, C] current latent; any floating dtype (math in float32).
    v: [B, H, W, C] model velocity at x_t.
    x0_ref: [B, H, W, C] reference clean latent (e.g. the upsampled low-resolution result).
    v_prev, v_ref_prev: [B, H, W, C] previous step's v_guided and v_ref, both or neither;
      given, the acceleration term runs (a static choice: it selects the kernel variant).
    sigma, sigma_next: current and next noise levels; Python floats or 0-d arrays (may be traced).
    alpha: guidance strength (0 = none); beta: acceleration weight. Floats or 0-d arrays.
    lowpass: "fft" (Butterworth, `cutoff` and `order`) or "dwt" (Haar 2x2 mean; even H, W).
    cutoff, order: Butterworth cutoff D > 0 and order n >= 1 (Python numbers).
    implementation: None (best available on `jax.default_backend()`), one of
      `registry.IMPLEMENTATIONS`, or a sequence of them tried in order.
    interpret: run Pallas implementations in the Pallas interpreter (any backend, slow).
    config: kernel launch settings; None picks `FlowGuidanceConfig.heuristic`.

  Returns:
    FlowGuidanceOutput(x_next, v_guided, v_ref, x0_unguided), each float32 [B, H, W, C].

  Raises:
    ValueError: bad shapes, only one of v_prev / v_ref_prev, unknown lowpass, odd H or W
      with "dwt", non-0-d scalars, or an unknown implementation name.
    TypeError: a non-array or non-floating input, or a config of the wrong type.
    registry.NoImplementationError: no requested implementation could serve the call.
  """
  scalars = dict(sigma=sigma, sigma_next=sigma_next, alpha=alpha, beta=beta)
  static = _prepare(x_t, v, x0_ref, v_prev, v_ref_prev, scalars, lowpass=lowpass, cutoff=cutoff, order=order,
                    config=config)
  # One float32 [4] array, so the kernels take traced scalars as an input rather than as constants.
  scalars_4 = jnp.stack([jnp.asarray(scalars[name], jnp.float32) for name in _SCALAR_NAMES])
  return _FLOW_GUIDANCE(x_t, v, x0_ref, v_prev, v_ref_prev, scalars_4, **static, implementation=implementation,
                        interpret=interpret)


def resolve_flow_guidance(
    x_t: jax.Array | jax.ShapeDtypeStruct,
    v: jax.Array | jax.ShapeDtypeStruct,
    x0_ref: jax.Array | jax.ShapeDtypeStruct,
    v_prev: jax.Array | jax.ShapeDtypeStruct | None = None,
    v_ref_prev: jax.Array | jax.ShapeDtypeStruct | None = None,
    *,
    sigma=1.0,
    sigma_next=0.0,
    alpha=0.0,
    beta=0.0,
    lowpass: str = "fft",
    cutoff: float = 0.2,
    order: int = 4,
    implementation: registry.ImplementationArg = None,
    interpret: bool = False,
    config: FlowGuidanceConfig | None = None,
) -> str:
  """Name of the implementation `flow_guidance` would run for these arguments; runs nothing.

  The scalars are checked but their values never choose an implementation, so they default
  to placeholders (0-d `jax.ShapeDtypeStruct`s are accepted too).
  """
  scalars = dict(sigma=sigma, sigma_next=sigma_next, alpha=alpha, beta=beta)
  static = _prepare(x_t, v, x0_ref, v_prev, v_ref_prev, scalars, lowpass=lowpass, cutoff=cutoff, order=order,
                    config=config)
  scalars_4 = jax.ShapeDtypeStruct((len(_SCALAR_NAMES),), jnp.float32)
  return _FLOW_GUIDANCE.resolve(x_t, v, x0_ref, v_prev, v_ref_prev, scalars_4, **static,
                                implementation=implementation, interpret=interpret)

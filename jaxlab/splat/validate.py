"""Input checks for Gaussians and cameras, run before any projection or kernel.

Shape and dtype checks always run. Value checks (finiteness, positivity) run only when the
arrays are concrete: under `jax.jit` the values are unknown, and `project` then culls
Gaussians with non-finite parameters instead of raising.
"""

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import _compat
from jaxlab.splat.sh import sh_degree_from_num_coeffs

# (field, trailing shape after the leading N; None = the SH coefficient count K).
_GAUSSIAN_FIELDS = (
    ("means", (3,)),
    ("log_scales", (3,)),
    ("quats", (4,)),
    ("opacity_logits", ()),
    ("sh", (None, 3)),
)
_CAMERA_SCALARS = ("fx", "fy", "cx", "cy", "near", "far")


def is_concrete(*arrays: Any) -> bool:
  """True when no array is a tracer, i.e. its values can be read on the host."""
  return not any(isinstance(a, _compat.Tracer) for a in arrays)


def as_float32(x: Any) -> jax.Array:
  """x as a float32 jax array; host values are converted on the host (no device compile)."""
  if isinstance(x, jax.Array):
    return x.astype(jnp.float32)
  return jnp.asarray(np.asarray(x, np.float32))


def _shape_text(trailing: tuple) -> str:
  dims = ["N", *("K" if d is None else str(d) for d in trailing)]
  return "[" + ", ".join(dims) + "]"


def _bad_rows_per_field(fields: tuple[Any, ...], active_n: Any) -> list[tuple[int, int]]:
  """(count, first index) of active rows with a non-finite entry, one pair per field.

  Runs in NumPy on the host: concrete arrays may still be closed over by an enclosing
  jit trace, where jnp operations on them would be staged out instead of evaluated.
  """
  active_n = np.asarray(active_n)
  result = []
  for x in fields:
    x = np.asarray(x)
    bad_n = active_n & ~np.all(np.isfinite(x.reshape(x.shape[0], -1)), axis=1)
    result.append((int(bad_n.sum()), int(np.argmax(bad_n))))
  return result


def check_gaussians(gaussians: Any) -> None:
  """Raises ValueError for a malformed `Gaussians`.

  Checks: every field has the documented shape with one common N
  (means [N, 3], log_scales [N, 3], quats [N, 4], opacity_logits [N], sh [N, K, 3] with
  K in 1, 4, 9, 16, active [N]); parameters are floating point and `active` is bool; and,
  on concrete arrays only, that active rows have finite parameters (inactive rows may
  hold anything). The error names the field and the number of bad rows.
  """
  num = None
  for name, trailing in _GAUSSIAN_FIELDS + (("active", ()),):
    x = getattr(gaussians, name)
    shape = tuple(getattr(x, "shape", ()))
    wrong_rank = len(shape) != 1 + len(trailing)
    if wrong_rank or any(d is not None and s != d for s, d in zip(shape[1:], trailing)):
      raise ValueError(f"Gaussians.{name} must have shape {_shape_text(trailing)}; got {shape}")
    if num is None:
      num = shape[0]
    elif shape[0] != num:
      raise ValueError(f"Gaussians fields disagree on N: means has {num} rows, {name} has {shape[0]}")
    dtype = jnp.dtype(x.dtype)
    if name == "active":
      if dtype != jnp.bool_:
        raise ValueError(f"Gaussians.active must be bool (which slots hold a Gaussian); got {dtype}")
    elif not jnp.issubdtype(dtype, jnp.floating):
      raise ValueError(f"Gaussians.{name} must be a floating dtype (float32, float64, bfloat16, ...); got {dtype}")
  sh_degree_from_num_coeffs(gaussians.sh.shape[1])

  fields = tuple(getattr(gaussians, name) for name, _ in _GAUSSIAN_FIELDS)
  if num == 0 or not is_concrete(*fields, gaussians.active):
    return
  for (name, _), (count, first) in zip(_GAUSSIAN_FIELDS, _bad_rows_per_field(fields, gaussians.active)):
    if count:
      raise ValueError(
          f"Gaussians.{name} has non-finite values in {count} active row(s) (first: row {first});"
          " fix them or mark those rows inactive")


def _check_positive_int(name: str, value: Any) -> None:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
    raise ValueError(f"Camera {name} must be a positive int (pixels); got {value!r}")


def check_camera(camera: Any) -> None:
  """Raises ValueError for a malformed `Camera` (single or batched).

  Checks: fx, fy, cx, cy, near, far share one batch shape B (() for one camera) and
  world_to_camera is [*B, 4, 4], all floating point; width and height are positive ints;
  and, on concrete arrays only, every entry is finite, fx > 0, fy > 0, near > 0 and
  near < far. The error names the field.
  """
  _check_positive_int("width", camera.width)
  _check_positive_int("height", camera.height)
  batch_shape = tuple(jnp.shape(camera.fx))
  for name in _CAMERA_SCALARS:
    shape = tuple(jnp.shape(getattr(camera, name)))
    if shape != batch_shape:
      raise ValueError(f"Camera {name} must have the batch shape of fx, {batch_shape}; got {shape}")
  w2c_shape = tuple(jnp.shape(camera.world_to_camera))
  if w2c_shape != (*batch_shape, 4, 4):
    raise ValueError(f"Camera world_to_camera must have shape {(*batch_shape, 4, 4)}; got {w2c_shape}")
  for name in (*_CAMERA_SCALARS, "world_to_camera"):
    dtype = jnp.result_type(getattr(camera, name))
    if not jnp.issubdtype(dtype, jnp.floating):
      raise ValueError(f"Camera {name} must be a floating dtype; got {dtype}")

  values = {name: getattr(camera, name) for name in (*_CAMERA_SCALARS, "world_to_camera")}
  if not is_concrete(*values.values()):
    return
  values = jax.device_get(values)
  for name, value in values.items():
    bad = int((~np.isfinite(value)).sum())
    if bad:
      raise ValueError(f"Camera {name} has {bad} non-finite value(s)")
  for name in ("fx", "fy", "near"):
    bad = int((values[name] <= 0).sum())
    if bad:
      raise ValueError(f"Camera {name} must be > 0; got {bad} non-positive value(s) (min {values[name].min()})")
  bad = int((values["near"] >= values["far"]).sum())
  if bad:
    raise ValueError(f"Camera near must be < far; got near >= far for {bad} camera(s)")

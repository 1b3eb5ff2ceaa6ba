"""Device meshes with jaxlab's named axes (`MESH_AXES`), built from per-axis sizes (-1 = fill)."""

import math
from collections.abc import Mapping, Sequence

import jax

from jaxlab import _compat
from jaxlab.sharding.axes import MESH_AXES

FILL = -1


def _axis_sizes(axis_sizes: Mapping[str, int]) -> list[int]:
  """Validates the requested sizes and returns one per mesh axis (1 where not given)."""
  valid = ", ".join(repr(a) for a in MESH_AXES)
  unknown = [name for name in axis_sizes if name not in MESH_AXES]
  if unknown:
    raise ValueError(f"Unknown mesh axes {unknown}; valid mesh axes: {valid}.")
  for name, size in axis_sizes.items():
    if isinstance(size, bool) or not isinstance(size, int) or (size < 1 and size != FILL):
      raise ValueError(
          f"Mesh axis {name!r} has size {size!r}; sizes are positive integers, or -1 for"
          " one axis to take the remaining devices.")
  filled = [name for name, size in axis_sizes.items() if size == FILL]
  if len(filled) > 1:
    raise ValueError(f"Only one mesh axis may have size -1 (fill); got -1 for {filled}.")
  return [axis_sizes.get(name, 1) for name in MESH_AXES]


def mesh_shape(axis_sizes: Mapping[str, int], num_devices: int) -> dict[str, int]:
  """The size of every mesh axis (in `MESH_AXES` order) for `num_devices`, with -1 filled.

  Needs no devices, so settings can be checked before any array exists.

  Raises:
    ValueError: for an unknown axis name, a bad size, more than one -1, or sizes whose
      product is not the device count.
  """
  sizes = _axis_sizes(axis_sizes)
  if FILL in sizes:
    fill_index = sizes.index(FILL)
    known = math.prod(s for s in sizes if s != FILL)
    if num_devices % known:
      raise ValueError(
          f"Cannot fill mesh axis {MESH_AXES[fill_index]!r}: the other axis sizes"
          f" {dict(zip(MESH_AXES, sizes))} multiply to {known}, which does not divide the"
          f" device count {num_devices}.")
    sizes[fill_index] = num_devices // known
  product = math.prod(sizes)
  if product != num_devices:
    raise ValueError(
        f"Mesh axis sizes {dict(zip(MESH_AXES, sizes))} multiply to {product}, but the"
        f" device count is {num_devices}; the product must equal the device count (give"
        " one axis -1 to fill).")
  return dict(zip(MESH_AXES, sizes))


def make_mesh(
    axis_sizes: Mapping[str, int],
    devices: Sequence[jax.Device] | None = None,
) -> jax.sharding.Mesh:
  """Builds a mesh over all given devices with axes `MESH_AXES`, in that order.

  Args:
    axis_sizes: size per mesh axis name, e.g. `{"data": 2, "fsdp": -1}`. Axes not given
      have size 1; at most one axis may be -1, meaning "all remaining devices".
    devices: devices to lay out; defaults to `jax.devices()` (all devices of all
      processes). The sizes must multiply to exactly their number.

  Returns:
    A `jax.sharding.Mesh` with Auto axes (the compiler propagates shardings), devices laid
    out by `jax.make_mesh` so that inner axes follow the fast interconnect.

  Raises:
    ValueError: for an unknown axis name, a bad size, more than one -1, or sizes whose
      product is not the device count.
  """
  devices = list(jax.devices() if devices is None else devices)
  sizes = list(mesh_shape(axis_sizes, len(devices)).values())
  return jax.make_mesh(
      tuple(sizes),
      MESH_AXES,
      axis_types=(_compat.AUTO_AXIS_TYPE,) * len(MESH_AXES),
      devices=devices,
  )

"""Small helpers that config files may use: variant selection and mesh presets.

Config files stay plain data: nothing here imports jax or touches the environment.
"""

from collections.abc import Sequence

# Mesh axis sizes per sharding preset; -1 fills the remaining devices.
MESH_PRESETS: dict[str, dict[str, int]] = {
    "data": {"data": -1, "fsdp": 1, "tensor": 1, "expert": 1},
    "fsdp": {"data": 1, "fsdp": -1, "tensor": 1, "expert": 1},
    "fsdp_tensor": {"data": 1, "fsdp": -1, "tensor": 2, "expert": 1},
    "expert": {"data": 1, "fsdp": -1, "tensor": 1, "expert": 2},
}


def pick_variant(arg: str | None, variants: Sequence[str]) -> str:
  """Returns `arg`, or the first (default) variant when `arg` is None or empty."""
  if not variants:
    raise ValueError("a config file must list at least one variant")
  if not arg:
    return variants[0]
  if arg not in variants:
    raise ValueError(f"unknown variant {arg!r}; valid variants: {', '.join(variants)}")
  return arg


def mesh_preset(name: str) -> dict[str, int]:
  """A fresh copy of the mesh axis sizes for preset `name` (see MESH_PRESETS)."""
  if name not in MESH_PRESETS:
    raise ValueError(f"unknown mesh preset {name!r}; valid presets: {', '.join(MESH_PRESETS)}")
  return dict(MESH_PRESETS[name])

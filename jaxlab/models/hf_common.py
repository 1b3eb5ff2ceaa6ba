"""Checks shared by the Hugging Face checkpoint writers (MoE LMs, Qwen2, InternVL)."""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxlab.moe.models import safetensors_io


def check_param_tree(flat: dict[tuple[str, ...], Any], expected: dict[tuple[str, ...], Any]) -> None:
  """Raises ValueError listing every missing, unexpected or wrongly shaped entry of `flat`
  (flattened params) against `expected` (flattened abstract params of the config)."""
  missing = sorted("/".join(k) for k in expected if k not in flat)
  unexpected = sorted("/".join(k) for k in flat if k not in expected)
  if missing or unexpected:
    raise ValueError(f"params do not match the config: {len(missing)} missing: {missing}; "
                     f"{len(unexpected)} unexpected: {unexpected}")
  wrong = [f"{'/'.join(k)}: shape {tuple(np.shape(v))}, expected {expected[k].shape}"
           for k, v in flat.items() if tuple(np.shape(v)) != expected[k].shape]
  if wrong:
    raise ValueError(f"params do not match the config: {wrong}")


def has_export_marker(directory, marker: tuple[str, str]) -> bool:
  """Whether `directory` holds safetensors whose metadata carries `marker` (key, value)."""
  key, value = marker
  try:
    return safetensors_io.Checkpoint(directory).metadata.get(key) == value
  except (OSError, ValueError):
    return False

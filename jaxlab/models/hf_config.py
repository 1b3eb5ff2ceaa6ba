"""Reading Hugging Face `config.json` files and dicts of decoder LMs: what Qwen2 and the MoE models share.

`read_json_object` (from `jaxlab.files`) reads config.json and safetensors indexes, naming the file,
line and column when one does not parse. Each dict check raises ValueError naming the config.json key (and
value) that a jaxlab model would not compute as transformers does, before any weight is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jaxlab.files import JSONFileError, read_json_object  # noqa: F401 - re-exported for the readers


def required_int(d: Mapping[str, Any], key: str) -> int:
  """d[key] as an int; raises ValueError when it is missing, null or not an int."""
  if d.get(key) is None:
    raise ValueError(f"config.json of model_type={d.get('model_type')!r} lacks {key!r}")
  value = d[key]
  if isinstance(value, bool) or not isinstance(value, int):
    raise ValueError(f"config.json {key!r} must be an int, got {value!r}")
  return value


def rope_theta(d: Mapping[str, Any], default: float) -> float:
  """RoPE base: transformers 5's rope_parameters.rope_theta, else 4.x's rope_theta, else `default`."""
  params = d.get("rope_parameters") or {}
  return float(params.get("rope_theta", d.get("rope_theta", default)))


def check_supported(d: Mapping[str, Any], *, sliding_window_key: str) -> None:
  """SiLU, unscaled full-width RoPE and full attention in every layer, or ValueError naming the key.

  `sliding_window_key`: "sliding_window" where a non-null window turns it on (Mixtral), or
  "use_sliding_window" where that flag does (Qwen2, Qwen2-MoE, Qwen3-MoE; they also list
  `layer_types`).
  """
  act = d.get("hidden_act", "silu")
  if act != "silu":
    raise ValueError(f"config.json hidden_act={act!r} is not supported (only 'silu')")
  for key in ("rope_scaling", "rope_parameters"):
    rope = d.get(key)
    if rope is None:
      continue
    if not isinstance(rope, Mapping):
      raise ValueError(f"config.json {key}={rope!r} is not supported (expected a dict)")
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
      raise ValueError(f"config.json {key} rope_type={rope_type!r} is not supported (only unscaled 'default' RoPE)")
    extra = sorted(set(rope) - {"rope_type", "type", "rope_theta"})
    if extra:
      raise ValueError(f"config.json {key} has unsupported entries {extra}")
  if d.get("partial_rotary_factor", 1.0) != 1.0:
    raise ValueError(f"config.json partial_rotary_factor={d['partial_rotary_factor']!r} is not supported (only 1.0)")
  if sliding_window_key == "sliding_window":
    if d.get("sliding_window") is not None:
      raise ValueError(f"config.json sliding_window={d['sliding_window']!r} is not supported (sliding-window attention)")
    return
  if d.get("use_sliding_window", False):
    raise ValueError(f"config.json use_sliding_window=true (sliding_window={d.get('sliding_window')!r}) is not "
                     "supported (sliding-window attention)")
  layer_types = d.get("layer_types")
  if layer_types and any(t != "full_attention" for t in layer_types):
    raise ValueError(f"config.json layer_types={layer_types!r} is not supported (only 'full_attention')")

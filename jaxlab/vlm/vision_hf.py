"""transformers InternVL state-dict names <-> jaxlab vision tower and projector params, both ways.

Torch Linear weights are [out, in] and become [in, out] kernels (attention kernels split the head
axis: [D, H, hd] and [H, hd, D]); the patch conv [D, C_in, ph, pw] becomes [ph, pw, C_in, D]. With
V = {prefix}vision_tower., layer i under V + encoder.layer.{i}., and M = {prefix}multi_modal_projector.:

  V embeddings.cls_token [1, 1, D]                      -> vision_tower/embeddings/cls_token [D]
  V embeddings.position_embeddings [1, 1 + P, D]        -> .../embeddings/position_embeddings [1 + P, D]
  V embeddings.patch_embeddings.projection.{weight,bias} -> .../embeddings/patch_{kernel,bias}
  layernorm_{before,after}.{weight,bias}                -> layer_{i}/norm_{1,2}/{scale,bias}
  attention.{q,k,v}_proj.{weight,bias}                  -> layer_{i}/attention/{q,k,v}_{kernel,bias}
  attention.projection_layer.{weight,bias}              -> layer_{i}/attention/o_{kernel,bias}
  attention.{q,k}_norm.weight [D]                       -> layer_{i}/attention/{q,k}_norm [H, hd]
  lambda_{1,2}                                          -> layer_{i}/lambda_{1,2}
  mlp.fc{1,2}.{weight,bias}                             -> layer_{i}/fc{1,2}/{kernel,bias}
  V layernorm.{weight,bias} (no mean pooling)           -> vision_tower/final_norm/{scale,bias}
  M {layer_norm,linear_1,linear_2}.{weight,bias}        -> projector/{layer_norm,linear_1,linear_2}/...

transformers 5 holds the model under prefix "model."; hub checkpoint files use no prefix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxlab.vlm.projector import ProjectorConfig
from jaxlab.vlm.vision import InternVisionConfig

VISION_TOWER = "vision_tower."
PROJECTOR = "multi_modal_projector."


@dataclasses.dataclass(frozen=True)
class Rule:
  """One tensor: HF name and shape, jaxlab path and shape, and the exact maps between them."""

  hf_name: str
  hf_shape: tuple[int, ...]
  path: tuple[str, ...]
  shape: tuple[int, ...]
  to_param: Callable[[np.ndarray], np.ndarray]
  to_hf: Callable[[np.ndarray], np.ndarray]


def _copy(hf_name, path, shape) -> Rule:
  return Rule(hf_name, tuple(shape), path, tuple(shape), lambda x: x, lambda x: x)


def _reshape(hf_name, hf_shape, path, shape) -> Rule:
  return Rule(hf_name, tuple(hf_shape), path, tuple(shape),
              lambda x: x.reshape(shape), lambda x: x.reshape(hf_shape))


def _transposed(hf_name, hf_shape, path, shape) -> Rule:
  """A [out, in] torch weight whose transpose, reshaped to `shape`, is the param."""
  out_dim, in_dim = hf_shape
  return Rule(hf_name, (out_dim, in_dim), path, tuple(shape),
              lambda x: x.T.reshape(shape), lambda x: x.reshape(in_dim, out_dim).T)


def _linear(hf_base: str, path: tuple[str, ...], in_dim: int, out_dim: int) -> list[Rule]:
  return [_transposed(hf_base + "weight", (out_dim, in_dim), path + ("kernel",), (in_dim, out_dim)),
          _copy(hf_base + "bias", path + ("bias",), (out_dim,))]


def _norm(hf_base: str, path: tuple[str, ...], kind: str, d: int) -> list[Rule]:
  rules = [_copy(hf_base + "weight", path + ("scale",), (d,))]
  if kind == "layer_norm":
    rules.append(_copy(hf_base + "bias", path + ("bias",), (d,)))
  return rules


def _vision_rules(c: InternVisionConfig, v: str) -> list[Rule]:
  d, h, hd, f = c.hidden_size, c.num_attention_heads, c.head_dim, c.intermediate_size
  (ph, pw), cin = c.patch_size, c.num_channels
  emb = ("vision_tower", "embeddings")
  rules = [
      _reshape(v + "embeddings.cls_token", (1, 1, d), emb + ("cls_token",), (d,)),
      Rule(v + "embeddings.patch_embeddings.projection.weight", (d, cin, ph, pw), emb + ("patch_kernel",),
           (ph, pw, cin, d), lambda x: x.transpose(2, 3, 1, 0), lambda x: x.transpose(3, 2, 0, 1)),
      _copy(v + "embeddings.patch_embeddings.projection.bias", emb + ("patch_bias",), (d,)),
  ]
  if c.use_absolute_position_embeddings:
    rules.append(_reshape(v + "embeddings.position_embeddings", (1, c.num_positions, d),
                          emb + ("position_embeddings",), (c.num_positions, d)))
  for i in range(c.num_hidden_layers):
    hf, layer = f"{v}encoder.layer.{i}.", ("vision_tower", f"layer_{i}")
    att, hf_att = layer + ("attention",), hf + "attention."
    for name in "qkv":
      rules.append(_transposed(f"{hf_att}{name}_proj.weight", (d, d), att + (f"{name}_kernel",), (d, h, hd)))
      if c.attention_bias:
        rules.append(_reshape(f"{hf_att}{name}_proj.bias", (d,), att + (f"{name}_bias",), (h, hd)))
    rules += [
        _transposed(hf_att + "projection_layer.weight", (d, d), att + ("o_kernel",), (h, hd, d)),
        _copy(hf_att + "projection_layer.bias", att + ("o_bias",), (d,)),
    ]
    if c.use_qk_norm:
      rules += [_reshape(f"{hf_att}{name}_norm.weight", (d,), att + (f"{name}_norm",), (h, hd)) for name in "qk"]
    rules += _norm(hf + "layernorm_before.", layer + ("norm_1",), c.norm_type, d)
    rules += _norm(hf + "layernorm_after.", layer + ("norm_2",), c.norm_type, d)
    rules += [_copy(hf + "lambda_1", layer + ("lambda_1",), (d,)), _copy(hf + "lambda_2", layer + ("lambda_2",), (d,))]
    rules += _linear(hf + "mlp.fc1.", layer + ("fc1",), d, f) + _linear(hf + "mlp.fc2.", layer + ("fc2",), f, d)
  if not c.use_mean_pooling:
    rules += _norm(v + "layernorm.", ("vision_tower", "final_norm"), "layer_norm", d)
  return rules


def _projector_rules(p: ProjectorConfig, m: str) -> list[Rule]:
  cin, d = p.in_features, p.text_hidden_size
  return (_norm(m + "layer_norm.", ("projector", "layer_norm"), "layer_norm", cin)
          + _linear(m + "linear_1.", ("projector", "linear_1"), cin, d)
          + _linear(m + "linear_2.", ("projector", "linear_2"), d, d))


def rules(vision_config: InternVisionConfig, projector_config: ProjectorConfig, prefix: str = "model.") -> list[Rule]:
  """Every tensor of the vision tower and projector, in state-dict order."""
  if projector_config.vision_hidden_size != vision_config.hidden_size:
    raise ValueError(f"projector_config.vision_hidden_size={projector_config.vision_hidden_size} != "
                     f"vision_config.hidden_size={vision_config.hidden_size}")
  return _vision_rules(vision_config, prefix + VISION_TOWER) + _projector_rules(projector_config, prefix + PROJECTOR)


def _to_numpy(value: Any) -> np.ndarray:
  """A host array of `value`; torch tensors (bfloat16 included) are read without a float32 detour."""
  if hasattr(value, "detach") and hasattr(value, "numpy"):
    value = value.detach().cpu()
    if str(value.dtype) == "torch.bfloat16":
      import torch  # Only reached with a torch tensor in hand, so torch is installed.
      return value.view(torch.int16).numpy().view(jnp.bfloat16)
    return value.numpy()
  return np.asarray(value)


def _detect_prefix(names) -> str:
  if any(n.startswith("model." + VISION_TOWER) or n.startswith("model." + PROJECTOR) for n in names):
    return "model."
  return ""


def params_from_hf(state_dict: Mapping[str, Any], vision_config: InternVisionConfig,
                   projector_config: ProjectorConfig, *, prefix: str | None = None,
                   dtype: Any = None) -> dict[str, Any]:
  """jaxlab params {"vision_tower": ..., "projector": ...} from an InternVL state dict.

  Args:
    state_dict: {name: tensor} (torch tensors or arrays), e.g. `model.state_dict()` of
      `InternVLForConditionalGeneration` or a hub safetensors file; names outside the vision tower
      and projector (the language model) are ignored.
    vision_config, projector_config: the configs the params are for.
    prefix: what precedes "vision_tower." / "multi_modal_projector."; None: "model." if such names are
      present, else "".
    dtype: cast every param to it; None keeps each tensor's dtype.

  Returns:
    {"vision_tower": InternVisionModel params, "projector": MultiModalProjector params} of jax arrays.

  Raises:
    ValueError: missing or unexpected vision / projector tensors (all listed by name), or shapes that do
      not match the configs (each tensor named), checked before any conversion.
  """
  if not isinstance(state_dict, Mapping):
    raise TypeError(f"state_dict must be a mapping of name -> tensor, got {type(state_dict).__name__}")
  prefix = _detect_prefix(state_dict) if prefix is None else prefix
  plan = rules(vision_config, projector_config, prefix)
  expected = {r.hf_name for r in plan}
  ours = (prefix + VISION_TOWER, prefix + PROJECTOR)
  missing = [r.hf_name for r in plan if r.hf_name not in state_dict]
  unexpected = sorted(n for n in state_dict if n.startswith(ours) and n not in expected)
  if missing or unexpected:
    raise ValueError(
        f"state dict does not match the InternVL vision / projector configs (prefix {prefix!r}): "
        f"{len(missing)} missing tensor(s): {missing}; {len(unexpected)} unexpected tensor(s): {unexpected}")
  wrong = [f"{r.hf_name}: shape {tuple(state_dict[r.hf_name].shape)}, expected {r.hf_shape}"
           for r in plan if tuple(state_dict[r.hf_name].shape) != r.hf_shape]
  if wrong:
    raise ValueError(f"state dict tensors do not match the configs ({len(wrong)}): " + "; ".join(wrong))
  flat = {}
  for r in plan:
    value = np.ascontiguousarray(r.to_param(_to_numpy(state_dict[r.hf_name])))
    flat[r.path] = jnp.asarray(value if dtype is None else value.astype(dtype))
  return traverse_util.unflatten_dict(flat)


def params_to_hf(params: Mapping[str, Any], vision_config: InternVisionConfig, projector_config: ProjectorConfig,
                 *, prefix: str = "model.") -> dict[str, np.ndarray]:
  """The InternVL state dict (vision tower and projector only) of jaxlab params, as writable numpy arrays.

  Args:
    params: {"vision_tower": ..., "projector": ...} as `params_from_hf` returns (boxed or not).
    vision_config, projector_config: the configs the params are for.
    prefix: put before "vision_tower." / "multi_modal_projector." ("model." for transformers 5
      `load_state_dict`, "" for hub checkpoint files).

  Raises:
    ValueError: missing or unexpected params (paths listed) or a shape that does not match the configs.
  """
  if not isinstance(params, Mapping):
    raise TypeError(f"params must be a dict with 'vision_tower' and 'projector', got {type(params).__name__}")
  plan = rules(vision_config, projector_config, prefix)
  flat = traverse_util.flatten_dict(nn.unbox(dict(params)))
  expected = {r.path for r in plan}
  missing = ["/".join(r.path) for r in plan if r.path not in flat]
  unexpected = sorted("/".join(k) for k in flat if k not in expected)
  if missing or unexpected:
    raise ValueError(f"params do not match the InternVL vision / projector configs: {len(missing)} missing: "
                     f"{missing}; {len(unexpected)} unexpected: {unexpected}")
  wrong = [f"{'/'.join(r.path)}: shape {tuple(np.shape(flat[r.path]))}, expected {r.shape}"
           for r in plan if tuple(np.shape(flat[r.path])) != r.shape]
  if wrong:
    raise ValueError(f"params do not match the configs ({len(wrong)}): " + "; ".join(wrong))
  out = {}
  for r in plan:
    value = np.ascontiguousarray(r.to_hf(np.asarray(flat[r.path])))
    out[r.hf_name] = value if value.flags.writeable else value.copy()  # torch.from_numpy wants writable
  return out

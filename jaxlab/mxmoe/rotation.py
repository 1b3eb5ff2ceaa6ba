"""Randomized Hadamard rotation of an MoE decoder LM's residual stream, absorbed into its params offline.

`rotate_moe_lm` walks the param tree of `jaxlab.moe.models` (embedding, attention, MoE or dense
feed-forward, norms, head), fuses every RMSNorm scale into the linears that read it and applies
one rotation Q to every linear that reads or writes the residual stream, with the matrix
transforms of `jaxlab.quant.hadamard`. The model's function, and its routing, stay the same.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import jax.numpy as jnp
from flax.core import meta

from jaxlab.quant.hadamard import (
    fuse_rms_norm_scale,
    random_hadamard_matrix,
    rotate_embedding,
    rotate_input_side,
    rotate_output_side,
)

# Per decoder layer: keys of the param tree and what reads / writes the residual stream.
_LAYER_KEYS = {"input_norm", "attention", "post_attention_norm", "moe", "mlp"}
_ATTENTION_KEYS = {"q", "k", "v", "o", "q_norm", "k_norm"}  # q/k norms act inside heads: untouched.
_MOE_READERS = ("router", "gate_up", "shared_gate_up", "shared_gate")
_MOE_WRITERS = ("shared_down", "down")
# The feed-forward block of a layer: its key, required and optional params (dense layers hold
# one SwiGLU expert under "mlp").
_FFN_KEYS = {
    "moe": ({"router", "gate_up", "down"}, set(_MOE_READERS) | set(_MOE_WRITERS)),
    "mlp": ({"gate_up", "down"}, {"gate_up", "down"}),
}
_LAYER_NAME = re.compile(r"^layers_(\d+)$")


def _check_float_array(a, name: str, min_ndim: int) -> None:
  if not hasattr(a, "shape") or not hasattr(a, "dtype"):
    raise TypeError(f"{name} must be an array, got {type(a).__name__}")
  if not jnp.issubdtype(a.dtype, jnp.floating):
    raise TypeError(f"{name} must be a float array, got dtype {a.dtype}")
  if a.ndim < min_ndim:
    raise ValueError(f"{name} must have at least {min_ndim} axes, got shape {a.shape}")


def _leaf(tree: Mapping, path: str):
  node = tree
  for part in path.split("/"):
    if not isinstance(node, Mapping) or part not in node:
      raise ValueError(f"rotate_moe_lm: params have no {path!r}")
    node = node[part]
  return node


def _check_keys(node: Mapping, allowed: set[str], where: str) -> None:
  unknown = sorted(set(node) - allowed)
  if unknown:
    raise ValueError(
        f"rotate_moe_lm: unexpected params {unknown} under {where!r}; their role in the residual stream is "
        f"unknown, so the rotation could not be exact (expected keys among {sorted(allowed)})"
    )


def _check_axis(tree: Mapping, path: str, axis: int, d: int, ndim: tuple[int, ...]) -> None:
  """`path` is a float array with ndim in `ndim` whose axis `axis` has the residual width d."""
  leaf = _leaf(tree, path)
  _check_float_array(leaf, path, 1)
  if leaf.ndim not in ndim or leaf.shape[axis] != d:
    raise ValueError(
        f"rotate_moe_lm: {path} has shape {leaf.shape}; expected {' or '.join(map(str, ndim))} axes "
        f"with axis {axis} of size D={d}"
    )


def _copy_tree(tree, boxes: dict, path: tuple = ()):
  """Fresh nested dicts of plain arrays (shared, not copied), so the caller's tree is never modified.

  Boxed leaves (flax `AxisMetadata`, e.g. `nn.LogicallyPartitioned` from `init`) are unboxed;
  `boxes` records them by path so `_rebox` can put the new values back in the same boxes.
  """
  if isinstance(tree, Mapping):
    return {k: _copy_tree(v, boxes, (*path, k)) for k, v in tree.items()}
  if isinstance(tree, meta.AxisMetadata):
    boxes[path] = tree
    return tree.unbox()
  return tree


def _rebox(tree: dict, boxes: dict) -> dict:
  for path, box in boxes.items():
    node = tree
    for part in path[:-1]:
      node = node[part]
    node[path[-1]] = box.replace_boxed(node[path[-1]])
  return tree


def _check_tree(config, tree: Mapping) -> tuple[list[int], int, bool]:
  """(layer ids, D, tied) of a valid tree, or ValueError naming the first problem."""
  layer_ids = sorted(int(m.group(1)) for name in tree if (m := _LAYER_NAME.match(name)))
  if layer_ids != list(range(len(layer_ids))) or not layer_ids:
    raise ValueError(f"rotate_moe_lm: expected layers_0 .. layers_{{L-1}}, got layer ids {layer_ids}")
  _check_keys(tree, {"embed", "final_norm", "lm_head"} | {f"layers_{i}" for i in layer_ids}, "params")
  num_layers = getattr(config, "num_layers", None)
  if num_layers is not None and num_layers != len(layer_ids):
    raise ValueError(f"rotate_moe_lm: config.num_layers = {num_layers} but params have {len(layer_ids)} layers")
  tied = "lm_head" not in tree
  config_tied = getattr(config, "tie_word_embeddings", None)
  if config_tied is not None and bool(config_tied) != tied:
    raise ValueError(
        f"rotate_moe_lm: config.tie_word_embeddings = {config_tied} but params "
        f"{'lack' if tied else 'have'} lm_head/kernel"
    )
  embedding = _leaf(tree, "embed/embedding")
  _check_float_array(embedding, "embed/embedding", 2)
  if embedding.ndim != 2:
    raise ValueError(f"rotate_moe_lm: embed/embedding must be [V, D], got shape {embedding.shape}")
  d = embedding.shape[1]
  _check_axis(tree, "final_norm/scale", 0, d, (1,))
  if not tied:
    _check_axis(tree, "lm_head/kernel", 0, d, (2,))
  for i in layer_ids:
    prefix = f"layers_{i}"
    _check_keys(tree[prefix], _LAYER_KEYS, prefix)
    _check_keys(_leaf(tree, f"{prefix}/attention"), _ATTENTION_KEYS, f"{prefix}/attention")
    for norm in ("input_norm", "post_attention_norm"):
      _check_axis(tree, f"{prefix}/{norm}/scale", 0, d, (1,))
    for name in ("q", "k", "v"):
      _check_axis(tree, f"{prefix}/attention/{name}/kernel", 0, d, (2,))
    _check_axis(tree, f"{prefix}/attention/o/kernel", -1, d, (2,))
    if "bias" in _leaf(tree, f"{prefix}/attention/o"):
      _check_axis(tree, f"{prefix}/attention/o/bias", 0, d, (1,))
    ffn_names = [name for name in _FFN_KEYS if name in tree[prefix]]
    if len(ffn_names) != 1:
      raise ValueError(f"rotate_moe_lm: {prefix} needs exactly one of 'moe' or 'mlp', got {ffn_names}")
    ffn_name = ffn_names[0]
    required, allowed = _FFN_KEYS[ffn_name]
    ffn = _leaf(tree, f"{prefix}/{ffn_name}")
    _check_keys(ffn, allowed, f"{prefix}/{ffn_name}")
    for name in sorted(required):
      _leaf(tree, f"{prefix}/{ffn_name}/{name}")
    for name in _MOE_READERS:
      if name in ffn:
        _check_axis(tree, f"{prefix}/{ffn_name}/{name}", -2, d, (2, 3))
    for name in _MOE_WRITERS:
      if name in ffn:
        _check_axis(tree, f"{prefix}/{ffn_name}/{name}", -1, d, (2, 3))
  return layer_ids, d, tied


def rotate_moe_lm(config, params: Mapping, key) -> dict:
  """Fuses the RMSNorm scales and rotates the residual stream of a MoE decoder LM by a random Hadamard Q.

  The param tree (optionally wrapped as {"params": tree}) is
    embed/embedding [V, D]; final_norm/scale [D]; lm_head/kernel [D, V] (absent when tied)
    layers_{i}/input_norm/scale, layers_{i}/post_attention_norm/scale [D]
    layers_{i}/attention/{q,k,v}/kernel [D, H*hd] (+ optional bias, untouched), o/kernel [H*hd, D]
      (+ optional o/bias [D], rotated), optional q_norm / k_norm (inside heads, untouched)
    layers_{i}/moe/router [D, E], gate_up [E, D, 2F], down [E, F, D], and optionally
      shared_gate_up [1, D, 2Fs], shared_down [1, Fs, D], shared_gate [D, 1];
      or, for a dense layer, layers_{i}/mlp/gate_up [1, D, 2I], mlp/down [1, I, D].
  Norm scales are fused into the linears that read them (q, k, v <- input_norm; router,
  gate_up, shared_gate_up, shared_gate, mlp gate_up <- post_attention_norm; lm_head <-
  final_norm) and set to ones; readers become Q^T W, writers (o, down, shared_down, mlp down)
  W Q, the embedding E Q. One Q serves every layer: the residual stream has one basis. The
  logits are unchanged (to float rounding), and so are the router logits, hence the routing.
  Every weight must still be a float array: rotate before quantizing.

  Tied embeddings: the head E^T would have to become Q^T diag(final scale) E^T, which is no
  longer the transpose of the rotated embedding E Q, so the result is UNTIED: it holds an
  explicit lm_head/kernel, and the model must be built with tie_word_embeddings=False
  (e.g. `dataclasses.replace(config, tie_word_embeddings=False)`).

  Args:
    config: the model config. Only read for consistency checks when it has the attributes
      `num_layers` or `tie_word_embeddings`; may be None.
    params: the nested-dict param tree above; not modified. Boxed leaves (flax
      `LogicallyPartitioned` and the like, as `init` returns them) come back in their boxes.
    key: jax PRNG key for the rotation.

  Returns:
    A new param tree (same wrapping, same dtypes; products are formed in float32 or better).

  Raises:
    TypeError: params is not a dict, a leaf is not a float array, or key is not a PRNG key.
    ValueError: a path is missing or has the wrong shape, an unknown key would leave the
      rotation inexact, or the tree disagrees with the config. All before any compute.
  """
  if not isinstance(params, Mapping):
    raise TypeError(f"params must be a nested dict of arrays, got {type(params).__name__}")
  wrapped = set(params) == {"params"}
  boxes = {}
  tree = _copy_tree(params["params"] if wrapped else params, boxes)
  layer_ids, d, tied = _check_tree(config, tree)
  q_dd = random_hadamard_matrix(d, key)  # Raises TypeError for a bad key before any compute.

  def fuse_norm(norm: dict, readers: list[tuple[dict, str]]) -> None:
    scale_d = norm["scale"]
    for node, name in readers:
      node[name] = rotate_input_side(fuse_rms_norm_scale(scale_d, node[name]), q_dd)
    norm["scale"] = jnp.ones_like(scale_d)

  for i in layer_ids:
    layer = tree[f"layers_{i}"]
    attention = layer["attention"]
    ffn = layer["moe"] if "moe" in layer else layer["mlp"]
    fuse_norm(layer["input_norm"], [(attention[name], "kernel") for name in ("q", "k", "v")])
    for name in ("kernel", "bias"):
      if name in attention["o"]:
        attention["o"][name] = rotate_output_side(attention["o"][name], q_dd)
    fuse_norm(layer["post_attention_norm"], [(ffn, name) for name in _MOE_READERS if name in ffn])
    for name in _MOE_WRITERS:
      if name in ffn:
        ffn[name] = rotate_output_side(ffn[name], q_dd)

  embedding_vd = tree["embed"]["embedding"]
  if tied:
    # The untied head starts as the original E^T (taken before the embedding is rotated).
    tree["lm_head"] = {"kernel": embedding_vd.T}
  fuse_norm(tree["final_norm"], [(tree["lm_head"], "kernel")])
  tree["embed"]["embedding"] = rotate_embedding(embedding_vd, q_dd)
  tree = _rebox(tree, boxes)
  return {"params": tree} if wrapped else tree

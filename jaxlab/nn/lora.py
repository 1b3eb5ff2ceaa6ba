"""LoRA (Hu et al., 2021): low-rank adapters over any parameter tree, sharded like their kernels, merged for export.

Model-agnostic: nothing here knows a module. A `LoraConfig` picks kernels by regexes on their
'/'-joined parameter paths; `init_lora` makes one adapter {"a": A, "b": B} per picked kernel W in
a tree that mirrors the params; `merge_lora` gives W + scale * A @ B for each, and
`apply_with_lora` runs a model's `apply` on those merged weights.

  A kernel W [*in, *out], whose first `in_ndim` dims contract with the layer input, gets
  A [*in, rank] ~ normal(0, 1 / prod(in)) and B [rank, *out] = 0, so the adapted model starts
  exactly equal to the base. delta(W) = scale * (A as [prod(in), rank]) @ (B as [rank, prod(out)]),
  reshaped to W's shape, with scale = alpha / rank.

Logical axis names: A is named (*W's input names, None) and B (None, *W's output names), so a
rule table shards A like W's input dims and B like W's output dims (under the tensor preset, B of
an attention query kernel is split along heads, A of an MLP down kernel along mlp); the rank dim
is replicated. `init_sharded(functools.partial(init_lora, params=abstract, config=config), key,
mesh=mesh, rules=rules)`, with `abstract = jax.eval_shape(model.init, ...)["params"]`, creates
the adapters directly in their shards.

Training: keep {"base": params, "lora": lora} as the train state's params, compute the loss
through `apply_with_lora`, and optimize with `lora_optimizer(optax.adamw(...))` (no optimizer
state for the base). Export: `merge_lora(params, lora, config)` is a plain parameter tree of the
base model, ready for its safetensors export.

Targets of jaxlab's models (`DEFAULT_TARGETS` covers both; neither touches InternViT's
`q_kernel`/`fc1` names nor the projector's `linear_1`/`linear_2`):
  Qwen2LM, alone or as InternVLModel's "language_model":
    layers_{i}/attention/{q,k,v,o}/kernel, layers_{i}/mlp/{gate,up,down}/kernel (all 2-D)
  DecoderLM: layer_{i}/attention/w{q,k,v} [D, H, hd], wo [H, hd, D] (2 input dims),
    layer_{i}/mlp/w_{gate,up,down}
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

# Every attention and MLP projection of jaxlab's decoders (Qwen2LM, also inside InternVLModel;
# DecoderLM); nothing of InternViT or the InternVL projector.
DEFAULT_TARGETS: tuple[str, ...] = (
    r"(^|/)layers_\d+/attention/(q|k|v|o)/kernel$",
    r"(^|/)layers_\d+/mlp/(gate|up|down)/kernel$",
    r"(^|/)layer_\d+/attention/w(q|k|v|o)$",
    r"(^|/)layer_\d+/mlp/w_(gate|up|down)$",
)
# Kernels whose first two dims contract with the input: [heads, head_dim, embed] output projections
# (DecoderLM's `wo`, InternViT's `o_kernel`). Every other kernel contracts one dim.
DEFAULT_INPUT_NDIM: tuple[tuple[str, int], ...] = ((r"(^|/)wo$", 2), (r"(^|/)o_kernel$", 2))

_PATHS_SHOWN = 24  # How many available paths an error lists.


@dataclasses.dataclass(frozen=True)
class LoraConfig:
  """Which kernels get adapters, and their rank and scale.

  Attributes:
    rank: r, the inner dim of A [*in, r] and B [r, *out]; >= 1.
    alpha: the update is scaled by `scale = alpha / rank` (so changing the rank at a fixed alpha
      keeps the update's size about the same, as in the LoRA paper and PEFT).
    targets: regexes, each `re.search`ed in a parameter's '/'-joined path (e.g.
      "language_model/layers_0/attention/q/kernel"); a parameter with >= 2 dims that any of them
      matches gets an adapter. Anchor them (`^language_model/`) to keep a tower out.
    input_ndim: (regex, n) pairs: a kernel whose path matches the first such regex has its first
      n dims contracted with the input (n = 2 for [heads, head_dim, embed] output projections);
      every other kernel has 1.
  """

  rank: int = 16
  alpha: float = 32.0
  targets: tuple[str, ...] = DEFAULT_TARGETS
  input_ndim: tuple[tuple[str, int], ...] = DEFAULT_INPUT_NDIM

  def __post_init__(self) -> None:
    if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
      raise ValueError(f"LoraConfig.rank must be an int >= 1, got {self.rank!r}")
    if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not (
        math.isfinite(self.alpha) and self.alpha > 0):
      raise ValueError(f"LoraConfig.alpha must be a finite number > 0, got {self.alpha!r}")
    if isinstance(self.targets, str) or not isinstance(self.targets, tuple):
      raise TypeError(f"LoraConfig.targets must be a tuple of regexes, got {self.targets!r}")
    if not self.targets:
      raise ValueError("LoraConfig.targets is empty; give at least one regex")
    for pattern in self.targets:
      _compile(pattern, "targets")
    if isinstance(self.input_ndim, str) or not isinstance(self.input_ndim, tuple):
      raise TypeError(f"LoraConfig.input_ndim must be a tuple of (regex, n) pairs, got {self.input_ndim!r}")
    for entry in self.input_ndim:
      if not (isinstance(entry, tuple) and len(entry) == 2):
        raise ValueError(f"LoraConfig.input_ndim entries are (regex, n) pairs, got {entry!r}")
      pattern, n = entry
      _compile(pattern, "input_ndim")
      if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"LoraConfig.input_ndim gives {pattern!r} {n!r} input dims; give an int >= 1")

  @property
  def scale(self) -> float:
    """alpha / rank, the factor on A @ B."""
    return self.alpha / self.rank

  def is_target(self, path: str) -> bool:
    """Whether any of `targets` is found in `path` (the rank check is `lora_targets`')."""
    return any(re.search(p, path) for p in self.targets)

  def in_ndim(self, path: str) -> int:
    """How many leading dims of the kernel at `path` contract with the input."""
    return next((n for pattern, n in self.input_ndim if re.search(pattern, path)), 1)


def _compile(pattern: Any, field: str) -> re.Pattern:
  if not isinstance(pattern, str):
    raise TypeError(f"LoraConfig.{field} holds {pattern!r}; each pattern is a regex string")
  try:
    return re.compile(pattern)
  except re.error as e:
    raise ValueError(f"LoraConfig.{field} holds {pattern!r}, which is not a valid regex: {e}") from e


def _is_box(x: Any) -> bool:
  return isinstance(x, nn.Partitioned)


def _value(x: Any) -> Any:
  """The array (or ShapeDtypeStruct) in a box, or x itself."""
  return x.value if _is_box(x) else x


def _path_str(path) -> str:
  return jax.tree_util.keystr(path, simple=True, separator="/")


def _flat_params(params: Any) -> list[tuple[str, Any, Any]]:
  """(path string, key path, leaf) for every leaf of `params`, boxes kept whole."""
  flat = jax.tree_util.tree_flatten_with_path(params, is_leaf=_is_box)[0]
  return [(_path_str(p), p, leaf) for p, leaf in flat]


def _shape(x: Any) -> tuple[int, ...]:
  return tuple(_value(x).shape)


def lora_targets(params: Any, config: LoraConfig) -> list[str]:
  """Paths ('/'-joined) of the parameters with >= 2 dims that `config.targets` match, in tree order.

  Raises:
    ValueError: nothing matches; the message lists parameter paths that could have.
  """
  flat = _flat_params(params)
  matrices = [path for path, _, leaf in flat if len(_shape(leaf)) >= 2]
  found = [path for path in matrices if config.is_target(path)]
  if not found:
    shown = "\n  ".join(matrices[:_PATHS_SHOWN]) + ("\n  ..." if len(matrices) > _PATHS_SHOWN else "")
    raise ValueError(f"LoraConfig.targets {config.targets!r} match no parameter with >= 2 dims; "
                     f"the {len(matrices)} such parameters include:\n  {shown}")
  return found


def _split_dims(path: str, shape: tuple[int, ...], config: LoraConfig) -> int:
  in_ndim = config.in_ndim(path)
  if in_ndim >= len(shape):
    raise ValueError(f"LoraConfig.input_ndim gives {path!r} (shape {shape}) {in_ndim} input dims, "
                     "leaving no output dim")
  return in_ndim


def _set_in(tree: dict, keys: list, value: Any) -> None:
  for k in keys[:-1]:
    tree = tree.setdefault(k, {})
  tree[keys[-1]] = value


def _key_name(k) -> Any:
  if isinstance(k, jax.tree_util.DictKey):
    return k.key
  if isinstance(k, jax.tree_util.GetAttrKey):
    return k.name
  if isinstance(k, jax.tree_util.SequenceKey):
    return k.idx
  raise TypeError(f"init_lora: unsupported key {k!r} in the parameter tree")


def _lora_dtype(w: Any) -> jnp.dtype:
  dtype = jnp.dtype(w.dtype)
  return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.dtype(jnp.float32)


def init_lora(key: jax.Array, params: Any, config: LoraConfig) -> dict:
  """Adapters for every target of `params`: {"a": A, "b": B} at each target kernel's place.

  For a kernel W [*in, *out] (`config.in_ndim` input dims) named (*in_names, *out_names):
  A [*in, rank] ~ normal with std 1 / sqrt(prod(in)) (a fan-in normal; PEFT draws A from
  kaiming-uniform(a=sqrt(5)), i.e. uniform with the smaller std 1 / sqrt(3 * fan_in); either keeps
  x @ A of unit scale), named (*in_names, None); B [rank, *out] = 0, named (None, *out_names). With
  B = 0 the adapted model equals the base, and A still gets a gradient through B once B moves.
  Both take W's dtype when that is floating (float32 otherwise).

  Args:
    key: PRNG key; each target gets its own fold of it (by its position in `lora_targets`).
    params: the model's params: plain arrays, or the boxed tree of `jax.eval_shape(model.init,
      ...)["params"]` (`nn.LogicallyPartitioned` over `ShapeDtypeStruct`s), or a boxed init.
    config: which kernels, and the rank.

  Returns:
    A nested dict with the params' keys down to each target kernel only, e.g.
    {"language_model": {"layers_0": {"attention": {"q": {"kernel": {"a": A, "b": B}}}}}}. Where a
    kernel is boxed, A and B are boxes of the same kind carrying the names above, so
    `init_sharded` (through `functools.partial(init_lora, params=..., config=...)`) and
    `logical_to_shardings` shard them.
  """
  targets = set(lora_targets(params, config))
  lora: dict = {}
  index = 0
  for path, key_path, leaf in _flat_params(params):
    if path not in targets:
      continue
    w = _value(leaf)
    shape = tuple(w.shape)
    in_ndim = _split_dims(path, shape, config)
    in_shape, out_shape = shape[:in_ndim], shape[in_ndim:]
    dtype = _lora_dtype(w)
    std = 1.0 / math.sqrt(math.prod(in_shape))
    a = (std * jax.random.normal(jax.random.fold_in(key, index), (*in_shape, config.rank), jnp.float32)).astype(dtype)
    b = jnp.zeros((config.rank, *out_shape), dtype)
    index += 1
    if _is_box(leaf):
      names = tuple(leaf.names)
      a = leaf.replace(value=a, names=(*names[:in_ndim], None))
      b = leaf.replace(value=b, names=(None, *names[in_ndim:]))
    _set_in(lora, [_key_name(k) for k in key_path], {"a": a, "b": b})
  return lora


def delta(a: jax.Array, b: jax.Array, scale: float, in_ndim: int) -> jax.Array:
  """scale * A @ B, shaped like the kernel [*in, *out], float32.

  Args:
    a: A [*in, rank] with `in_ndim` input dims.
    b: B [rank, *out].
    scale: alpha / rank.
    in_ndim: how many leading kernel dims contract with the input.
  """
  a, b = _value(a), _value(b)
  if a.ndim != in_ndim + 1 or b.ndim < 2 or a.shape[-1] != b.shape[0]:
    raise ValueError(f"LoRA A {tuple(a.shape)} and B {tuple(b.shape)} do not fit a kernel with {in_ndim} input "
                     "dims: A must be [*in, rank] with that many input dims, B [rank, *out]")
  rank = a.shape[-1]
  a_ir = a.reshape(-1, rank).astype(jnp.float32)
  b_ro = b.reshape(rank, -1).astype(jnp.float32)
  # The product is rank-r, so full float32 precision costs little even where the default is lower (TPU, TF32).
  w_io = jnp.matmul(a_ir, b_ro, precision=jax.lax.Precision.HIGHEST)
  return (scale * w_io).reshape(*a.shape[:-1], *b.shape[1:])


def _is_entry(node: Any) -> bool:
  return (isinstance(node, Mapping) and set(node) == {"a", "b"}
          and not any(isinstance(v, Mapping) for v in node.values()))


def _lora_entries(lora: Any, prefix: str = "") -> dict[str, Mapping]:
  """{kernel path: {"a": A, "b": B}} of a tree from `init_lora`."""
  if _is_entry(lora):
    return {prefix: lora}
  if not isinstance(lora, Mapping):
    raise ValueError(f"LoRA tree: {prefix or 'the root'!r} is a {type(lora).__name__}, neither a dict of "
                     'submodules nor a {"a": A, "b": B} adapter')
  entries = {}
  for k, sub in lora.items():
    entries.update(_lora_entries(sub, f"{prefix}/{k}" if prefix else str(k)))
  return entries


def merge_lora(params: Any, lora: Any, config: LoraConfig) -> Any:
  """params with each adapted kernel W replaced by W + delta(A, B), in W's dtype.

  The sum is formed in float32 and cast once. Everything else is returned as is, in the same tree
  structure (boxes stay boxes). This is the export step (the result is a plain base-model tree) and
  the forward of training (`apply_with_lora`).

  Raises:
    ValueError: a LoRA entry whose path is no parameter of `params`, or whose A and B do not fit
      its kernel's shape (with `config.input_ndim`).
  """
  entries = _lora_entries(lora)
  flat = _flat_params(params)
  known = {path for path, _, _ in flat}
  missing = [path for path in entries if path not in known]
  if missing:
    raise ValueError(f"LoRA entries {missing} have no matching kernel in params (a tree for another model, "
                     "or the params of a submodule?)")

  def merged(path: str, leaf: Any) -> Any:
    entry = entries.get(path)
    if entry is None:
      return leaf
    w = _value(leaf)
    in_ndim = config.in_ndim(path)
    a_shape, b_shape = tuple(_value(entry["a"]).shape), tuple(_value(entry["b"]).shape)
    if a_shape[:-1] + b_shape[1:] != tuple(w.shape) or len(a_shape) - 1 != in_ndim or a_shape[-1:] != b_shape[:1]:
      raise ValueError(f"LoRA entry {path!r}: A {a_shape} and B {b_shape} do not fit kernel {tuple(w.shape)} with "
                       f"{in_ndim} input dims (A [*in, rank], B [rank, *out])")
    new_w = (w.astype(jnp.float32) + delta(entry["a"], entry["b"], config.scale, in_ndim)).astype(w.dtype)
    return leaf.replace(value=new_w) if _is_box(leaf) else new_w

  return jax.tree_util.tree_map_with_path(lambda p, leaf: merged(_path_str(p), leaf), params, is_leaf=_is_box)


def apply_with_lora(apply_fn: Callable[..., Any], params: Any, lora: Any, config: LoraConfig, *args, **kwargs) -> Any:
  """`apply_fn({"params": merge_lora(params, lora, config)}, *args, **kwargs)`, the base frozen.

  Merges at read time, inside the jitted step: each step costs one rank-r product (prod(in) x r x
  prod(out)) and one add per adapted kernel on top of the base forward, and no model code changes.
  The base params pass through `jax.lax.stop_gradient`, so gradients flow to A and B only (the
  base's gradient is zero and its weight-gradient matmuls are not computed). Memory: the merged
  kernels are temporaries of the step, up to one extra copy of the adapted kernels where XLA does not
  fuse the add into their consumers; the backward pass reads them again to reach A and B.

  Args:
    apply_fn: e.g. `model.apply`.
    params: the base params (unboxed).
    lora: from `init_lora` (unboxed).
    config: the config `lora` was made with.
    *args, **kwargs: passed on to `apply_fn`.
  """
  return apply_fn({"params": merge_lora(jax.lax.stop_gradient(params), lora, config)}, *args, **kwargs)


def lora_optimizer(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
  """`optimizer` on the "lora" half of params {"base": ..., "lora": ...}; zero updates, and no state, for "base".

  As `launch.tasks.vlm_sft.with_frozen_vision`: `optax.multi_transform` with `optax.set_to_zero()`
  on the base, so adding the updates leaves it unchanged and Adam keeps moments for the adapters only.
  """

  def labels(params: Any) -> dict[str, str]:
    if not isinstance(params, Mapping) or set(params) != {"base", "lora"}:
      got = sorted(params) if isinstance(params, Mapping) else type(params).__name__
      raise ValueError(f'lora_optimizer expects params {{"base": params, "lora": lora}}, got {got}')
    return {"base": "frozen", "lora": "lora"}

  return optax.multi_transform({"lora": optimizer, "frozen": optax.set_to_zero()}, labels)


def num_params(tree: Any) -> int:
  """The number of scalars in `tree` (arrays, `ShapeDtypeStruct`s or boxes of them)."""
  return sum(int(np.prod(_shape(leaf), dtype=np.int64)) for leaf in jax.tree.leaves(tree, is_leaf=_is_box))

"""Annotating parameters and activations with logical axis names, and resolving them.

Everything here goes through Flax Linen's logical partitioning, so that a rename in flax
or jax is absorbed in this one file.
"""

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import flax.linen as nn
import jax
from jax.sharding import NamedSharding, PartitionSpec

from jaxlab import _compat
from jaxlab.sharding.axes import BATCH
from jaxlab.sharding.rules import Rules

LogicalAxes = tuple[str | None, ...]


def _checked_axes(axes: Sequence[str | None]) -> LogicalAxes:
  axes = tuple(axes)
  for name in axes:
    if not (name is None or isinstance(name, str) or name is PartitionSpec.UNCONSTRAINED):
      raise ValueError(
          f"Logical axes {axes!r} contain {name!r}; each entry is a logical axis name"
          " (str) or None (replicated).")
  return axes


def _check_rank(shape: Sequence[int], axes: LogicalAxes, what: str) -> None:
  if len(shape) != len(axes):
    raise ValueError(
        f"{what} has shape {tuple(shape)} ({len(shape)} dims) but logical axes {axes!r}"
        f" name {len(axes)}; give one name (or None) per dimension.")


def param_with_axes(init_fn: Callable[..., jax.Array], axes: Sequence[str | None]) -> Callable:
  """Wraps a Linen parameter initializer so that its value carries logical axis names.

  Use as `nn.Dense(..., kernel_init=param_with_axes(nn.initializers.lecun_normal(),
  (EMBED, MLP)))` or `self.param("scale", param_with_axes(init, (EMBED,)), shape)`.

  Args:
    init_fn: initializer `(key, shape, dtype) -> array`.
    axes: one logical name (or None) per dimension of the parameter.

  Returns:
    An initializer returning `nn.LogicallyPartitioned` boxes; `init_sharded` and
    `logical_to_shardings` read the names from them.
  """
  axes = _checked_axes(axes)
  boxed_init = nn.with_logical_partitioning(init_fn, axes)

  def init_with_rank_check(*args, **kwargs) -> nn.LogicallyPartitioned:
    boxed = boxed_init(*args, **kwargs)
    _check_rank(boxed.value.shape, axes, "Parameter")
    return boxed

  return init_with_rank_check


def constrain(x: jax.Array, axes: Sequence[str | None]) -> jax.Array:
  """Constrains the sharding of activation `x` by logical axis names.

  Active only while tracing (inside `jax.jit` etc.) with rules set by `axis_rules` and a
  mesh set by `jax.set_mesh`; otherwise `x` is returned unchanged. A constraint guides the
  compiler's partitioner, so eager code has nothing to constrain; to move a concrete array,
  use `jax.device_put`. The legacy `with mesh:` context does not count as a mesh here:
  Linen reads the mesh that `jax.set_mesh` sets. The rules are read when the function is
  traced, and jax's trace cache does not see them (see `axis_rules`).

  Args:
    x: array whose dimensions are named by `axes`.
    axes: one logical name (or None) per dimension of `x`.

  Returns:
    `x`, with a sharding constraint when active.
  """
  axes = _checked_axes(axes)
  _check_rank(x.shape, axes, "Activation")
  if not isinstance(x, _compat.Tracer):
    return x
  return nn.with_logical_constraint(x, axes)


def axis_rules(rules: Rules) -> AbstractContextManager[None]:
  """Context manager that makes `rules` the rule table for `constrain` and unboxing.

  Enter it (with `jax.set_mesh`) before a jitted function is first called: the rules are
  read while tracing, and jax's trace cache is keyed on the mesh but not on these rules, so
  a function already traced under the same mesh keeps the rules (or their absence) that it
  was first traced with.
  """
  return nn.logical_axis_rules(rules)


def logical_to_shardings(abstract_tree: Any, mesh: jax.sharding.Mesh, rules: Rules) -> Any:
  """Maps a tree with logically boxed leaves to a tree of `NamedSharding`s.

  Args:
    abstract_tree: e.g. `jax.eval_shape(model.init, key, x)`: leaves are
      `nn.LogicallyPartitioned` boxes (from `param_with_axes`) or plain arrays /
      `jax.ShapeDtypeStruct`s, which are replicated.
    mesh: the mesh to shard over.
    rules: the logical rule table, e.g. from `logical_rules`.

  Returns:
    A tree shaped like `nn.unbox(abstract_tree)` with one `NamedSharding` per leaf.

  Raises:
    ValueError: for a box whose names do not match its value's rank, or a box with mesh
      axis names (`nn.with_partitioning`) instead of logical ones.
  """

  def leaf_sharding(path, leaf) -> NamedSharding:
    where = f"Parameter {jax.tree_util.keystr(path, simple=True, separator='/')!r}"
    if isinstance(leaf, nn.LogicallyPartitioned):
      axes = _checked_axes(leaf.names)
      _check_rank(leaf.value.shape, axes, where)
      return NamedSharding(mesh, nn.logical_to_mesh_axes(axes, rules))
    if isinstance(leaf, nn.Partitioned):
      raise ValueError(
          f"{where} is annotated with mesh axes {leaf.names!r} (nn.with_partitioning);"
          " annotate it with logical names through param_with_axes.")
    return NamedSharding(mesh, PartitionSpec())

  return jax.tree_util.tree_map_with_path(
      leaf_sharding, abstract_tree, is_leaf=lambda x: isinstance(x, nn.Partitioned))


def batch_sharding(mesh: jax.sharding.Mesh, rules: Rules, ndim: int) -> NamedSharding:
  """Sharding for an input batch: dimension 0 by the `batch` rule, the rest replicated."""
  if ndim < 1:
    raise ValueError(f"A batch has a leading batch dimension, so ndim >= 1; got ndim={ndim}.")
  spec = nn.logical_to_mesh_axes((BATCH,) + (None,) * (ndim - 1), rules)
  return NamedSharding(mesh, spec)

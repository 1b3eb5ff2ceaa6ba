"""Creating parameters already sharded: shapes first, then a compiled init with out shardings."""

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax

from jaxlab import _compat
from jaxlab.sharding.annotate import axis_rules, logical_to_shardings
from jaxlab.sharding.rules import Rules


def init_sharded(
    init_fn: Callable[..., Any],
    *args: Any,
    mesh: jax.sharding.Mesh,
    rules: Rules,
) -> tuple[Any, Any]:
  """Initialises parameters directly into their shards.

  `jax.eval_shape` gives the boxed abstract tree (no allocation), its logical names give
  one `NamedSharding` per leaf, and the init runs under `jax.jit` with those as out
  shardings, so each device only ever holds its own shard: a parameter too large for one
  device never exists whole. `init_fn` runs with `rules` and `mesh` as the ambient
  context, so `constrain` calls inside the model take effect during init as they do in the
  train step.

  Args:
    init_fn: e.g. `model.init`; returns a tree whose leaves are `nn.LogicallyPartitioned`
      boxes or plain arrays (replicated).
    *args: its arguments, all arrays (e.g. a PRNG key and a dummy input); bind other
      arguments with `functools.partial`.
    mesh: the mesh to shard over.
    rules: the logical rule table, e.g. from `logical_rules`.

  Returns:
    `(params, shardings)`: the unboxed parameter tree and the matching tree of
    `NamedSharding`s (for `jax.jit` in/out shardings and checkpoint restore).
  """
  with axis_rules(rules), _compat.set_mesh(mesh):
    abstract_boxed = jax.eval_shape(init_fn, *args)
    shardings = logical_to_shardings(abstract_boxed, mesh, rules)
    params = _jit_init(init_fn, shardings)(*args)
  return params, shardings


def _jit_init(init_fn: Callable[..., Any], shardings: Any) -> Callable[..., Any]:
  """The compiled init: unboxed parameters, each produced directly in its sharding."""
  return jax.jit(lambda *a: nn.unbox(init_fn(*a)), out_shardings=shardings)

"""Rule tables that map logical axis names to mesh axes, one preset per parallelism style.

A Linen rule table is an ordered tuple of `(logical_name, mesh_axes)` pairs. For each array,
Linen walks the table in order and gives a dimension the first rule whose mesh axes are all
still unused by the other dimensions of that array; a dimension with no usable rule is
replicated. `logical_rules` merges presets into one such table, ordered and with fallback
rules, so that this first-fit walk gives the layout the presets intend.
"""

import itertools
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from jaxlab.sharding.axes import BATCH, EMBED, EXPERT, HEADS, KV_HEADS, MLP, SEQ, VOCAB

MeshAxes = str | tuple[str, ...] | None
Rules = tuple[tuple[str, MeshAxes], ...]

PRESETS: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType({
    # Data parallelism: split the batch.
    "data": ((BATCH, "data"),),
    # Fully sharded data parallelism: split the batch and the weights' embed dimension.
    "fsdp": ((BATCH, "fsdp"), (EMBED, "fsdp")),
    # Context (sequence) parallelism: split activations along the sequence; attention then
    # needs `jaxlab.ops.attention_op.context_parallel` to see keys held by other devices.
    "context": ((SEQ, "context"),),
    # Tensor (model) parallelism: split the wide dimensions of attention, MLP and vocab.
    "tensor": ((HEADS, "tensor"), (KV_HEADS, "tensor"), (MLP, "tensor"), (VOCAB, "tensor")),
    # Expert parallelism: experts live on different devices; tokens are split there too.
    "expert": ((BATCH, "expert"), (EXPERT, "expert")),
})

# Logical names that claim their mesh axes before all others, in this order. `expert` comes
# first so that an array with both an expert and a batch dimension (dispatched tokens) is
# expert-parallel over the `expert` axis and batch-split over what is left, instead of
# batch taking every axis and leaving the experts replicated.
_CLAIMS_FIRST = (EXPERT,)


def _as_mesh_axes(axes: Sequence[str]) -> str | tuple[str, ...]:
  """Linen's form: a single axis as a string, several as a tuple."""
  return axes[0] if len(axes) == 1 else tuple(axes)


def _preset_names(presets: str | Sequence[str]) -> tuple[str, ...]:
  names = (presets,) if isinstance(presets, str) else tuple(presets)
  valid = ", ".join(repr(p) for p in PRESETS)
  for name in names:
    if not isinstance(name, str) or name not in PRESETS:
      raise ValueError(f"Unknown sharding preset {name!r}; valid presets: {valid}.")
  repeated = sorted({n for n in names if names.count(n) > 1})
  if repeated:
    raise ValueError(f"Sharding presets {repeated} given more than once in {names!r}.")
  return names


def _fallbacks(mesh_axes: list[str], claimable: set[str]) -> list[list[str]]:
  """What is left of `mesh_axes` once earlier names took part of it, largest first.

  Only axes in `claimable` (those of earlier rules) can have been taken, so only those are
  dropped; an empty remainder is no rule at all (the dimension is then replicated).
  """
  contested = [a for a in mesh_axes if a in claimable]
  return [
      [a for a in mesh_axes if a not in taken]
      for count in range(1, len(contested) + 1)
      for taken in itertools.combinations(contested, count)
      if len(taken) < len(mesh_axes)
  ]


def logical_rules(presets: str | Sequence[str]) -> Rules:
  """Merges presets, in order, into one Linen logical axis rule table.

  Each logical name maps to the mesh axes of every preset that mentions it, in preset order:
  `logical_rules(("data", "fsdp"))` is `(("batch", ("data", "fsdp")), ("embed", "fsdp"))`.

  Within one array, Linen gives each mesh axis to at most one dimension, walking the table
  in order. The table is built so that the outcome is: each logical name, in claim order,
  takes those of its mesh axes that earlier names in the same array left free (it is
  replicated if none are left).

  - Claim order: `expert` first, then the other names in the order the presets introduce
    them. So `batch` claims data/fsdp before `embed` (an FSDP activation
    `(batch, seq, embed)` is split by batch and keeps its embed dimension whole), and
    dispatched tokens `(expert, batch, embed)` with every preset become
    `("expert", ("data", "fsdp"), None)`: experts over the `expert` axis, tokens over the
    rest.
  - A name whose mesh axes earlier names may take is followed, right after its own rule, by
    fallback rules for what would be left of its axes. The same name then appears more than
    once: the first entry for a name is its full mapping, so read the table in order and do
    not turn it into a dict.

  Args:
    presets: one preset name or a sequence of them; see `PRESETS`. An empty sequence gives
      an empty table (everything replicated).

  Returns:
    The rule table, usable with `axis_rules`, `nn.logical_axis_rules` and
    `nn.logical_to_mesh_axes`.

  Raises:
    ValueError: for an unknown or repeated preset name.
  """
  merged: dict[str, list[str]] = {}
  for preset in _preset_names(presets):
    for logical_name, mesh_axis in PRESETS[preset]:
      mesh_axes = merged.setdefault(logical_name, [])
      if mesh_axis not in mesh_axes:
        mesh_axes.append(mesh_axis)

  claim_order = [n for n in _CLAIMS_FIRST if n in merged]
  claim_order += [n for n in merged if n not in _CLAIMS_FIRST]
  table: list[tuple[str, MeshAxes]] = []
  claimable: set[str] = set()
  for name in claim_order:
    table.append((name, _as_mesh_axes(merged[name])))
    table += [(name, _as_mesh_axes(rest)) for rest in _fallbacks(merged[name], claimable)]
    claimable.update(merged[name])
  return tuple(table)

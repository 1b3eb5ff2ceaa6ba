"""Tests for preset merging and for the layouts Linen derives from the merged rule table."""

import itertools

import flax.linen as nn
import pytest

from jaxlab.sharding import axes, rules

ALL_PRESETS = tuple(rules.PRESETS)


def first_rule(table, name):
  """The mapping Linen tries first for `name` (its full set of mesh axes)."""
  return next(mesh_axes for logical, mesh_axes in table if logical == name)


def spec_entries(table, names):
  return tuple(nn.logical_to_mesh_axes(names, table))


def test_data_fsdp_merge_maps_batch_to_both_axes_and_embed_to_fsdp():
  table = rules.logical_rules(("data", "fsdp"))
  assert first_rule(table, axes.BATCH) == ("data", "fsdp")
  assert first_rule(table, axes.EMBED) == "fsdp"
  assert {name for name, _ in table} == {axes.BATCH, axes.EMBED}


def test_merge_follows_preset_order():
  assert first_rule(rules.logical_rules(("fsdp", "data")), axes.BATCH) == ("fsdp", "data")


def test_single_preset_string_equals_one_element_sequence():
  assert rules.logical_rules("tensor") == rules.logical_rules(["tensor"])
  table = rules.logical_rules("tensor")
  for name in (axes.HEADS, axes.KV_HEADS, axes.MLP, axes.VOCAB):
    assert first_rule(table, name) == "tensor"


def test_presets_name_only_known_logical_and_mesh_axes():
  logical_names = {v for k, v in vars(axes).items() if k.isupper() and isinstance(v, str)}
  for preset, table in rules.PRESETS.items():
    for logical, mesh_axis in table:
      assert logical in logical_names, (preset, logical)
      assert mesh_axis in axes.MESH_AXES, (preset, mesh_axis)


def test_unknown_preset_error_lists_valid_presets():
  with pytest.raises(ValueError) as info:
    rules.logical_rules(("data", "pipeline"))
  message = str(info.value)
  assert "'pipeline'" in message
  for preset in ALL_PRESETS:
    assert repr(preset) in message


def test_repeated_preset_is_an_error():
  with pytest.raises(ValueError, match="more than once"):
    rules.logical_rules(("data", "fsdp", "data"))


def test_empty_preset_list_replicates_everything():
  table = rules.logical_rules(())
  assert table == ()
  assert spec_entries(table, (axes.BATCH, axes.EMBED)) == (None, None)


def test_fsdp_activation_is_batch_split_and_keeps_embed_whole():
  table = rules.logical_rules(("data", "fsdp"))
  # fsdp is taken by batch, so embed (whose only axis is fsdp) is replicated.
  assert spec_entries(table, (axes.BATCH, axes.SEQ, axes.EMBED)) == (("data", "fsdp"), None, None)
  # A weight has no batch dimension, so embed gets fsdp.
  assert spec_entries(table, (axes.EMBED, axes.MLP)) == ("fsdp", None)


def test_fsdp_plus_tensor_weight_layouts():
  table = rules.logical_rules(("data", "fsdp", "tensor"))
  assert spec_entries(table, (axes.EMBED, axes.MLP)) == ("fsdp", "tensor")
  assert spec_entries(table, (axes.MLP, axes.EMBED)) == ("tensor", "fsdp")
  assert spec_entries(table, (axes.VOCAB, axes.EMBED)) == ("tensor", "fsdp")
  assert spec_entries(table, (axes.EMBED, axes.HEADS, axes.HEAD_DIM)) == ("fsdp", "tensor", None)


def test_context_preset_splits_the_sequence_of_activations_only():
  table = rules.logical_rules(("data", "fsdp", "context", "tensor"))
  assert first_rule(table, axes.SEQ) == "context"
  assert spec_entries(table, (axes.BATCH, axes.SEQ, axes.EMBED)) == (("data", "fsdp"), "context", None)
  assert spec_entries(table, (axes.BATCH, axes.SEQ, axes.HEADS, axes.HEAD_DIM)) == (
      ("data", "fsdp"), "context", "tensor", None)
  # Weights have no sequence dimension: their layout is the one without the preset.
  assert spec_entries(table, (axes.EMBED, axes.MLP)) == ("fsdp", "tensor")


def test_expert_tokens_take_expert_axis_and_batch_falls_back_to_the_rest():
  table = rules.logical_rules(ALL_PRESETS)
  assert spec_entries(table, (axes.EXPERT, axes.BATCH, axes.EMBED)) == (
      "expert", ("data", "fsdp"), None)
  # Without an expert dimension, batch takes every axis of its rule.
  assert spec_entries(table, (axes.BATCH, axes.EMBED)) == (("data", "fsdp", "expert"), None)
  assert spec_entries(table, (axes.EXPERT, axes.EMBED, axes.MLP)) == ("expert", "fsdp", "tensor")


def test_linen_replicates_a_dimension_whose_only_rule_is_partly_taken():
  # This is what the fallback rules are for: keep only the first rule per name and
  # Linen, finding 'expert' already used, leaves batch replicated.
  # fsdp, left free by batch, then goes to embed.
  table = rules.logical_rules(ALL_PRESETS)
  first_only = tuple((name, first_rule(table, name)) for name in dict(table))
  assert len(first_only) < len(table)
  assert spec_entries(first_only, (axes.EXPERT, axes.BATCH, axes.EMBED)) == ("expert", None, "fsdp")
  assert spec_entries(table, (axes.EXPERT, axes.BATCH, axes.EMBED)) == (
      "expert", ("data", "fsdp"), None)


def _claim_order(preset_names):
  """Expert first, then logical names in the order the presets introduce them."""
  order = []
  for preset in preset_names:
    for logical, _ in rules.PRESETS[preset]:
      if logical not in order:
        order.append(logical)
  return sorted(order, key=lambda name: name != axes.EXPERT)


def _greedy_layout(preset_names, names):
  """Each name, in claim order, takes the mesh axes of its presets that are still free."""
  wanted = {}
  for preset in preset_names:
    for logical, mesh_axis in rules.PRESETS[preset]:
      wanted.setdefault(logical, []).append(mesh_axis)
  taken, layout = set(), {}
  for logical in _claim_order(preset_names):
    if logical in names:
      free = [a for a in dict.fromkeys(wanted[logical]) if a not in taken]
      taken.update(free)
      layout[logical] = None if not free else free[0] if len(free) == 1 else tuple(free)
  return tuple(layout.get(name) for name in names)


def test_every_preset_combination_and_array_layout_is_greedy_in_claim_order():
  names = (axes.BATCH, axes.SEQ, axes.EMBED, axes.HEADS, axes.MLP, axes.VOCAB, axes.EXPERT)
  checked = 0
  for count in range(1, len(ALL_PRESETS) + 1):
    for preset_names in itertools.permutations(ALL_PRESETS, count):
      table = rules.logical_rules(preset_names)
      for rank in (1, 2, 3):
        for array_names in itertools.permutations(names, rank):
          got = spec_entries(table, array_names)
          assert got == _greedy_layout(preset_names, array_names), (preset_names, array_names)
          used = [a for e in got if e for a in ((e,) if isinstance(e, str) else e)]
          assert len(used) == len(set(used))
          checked += 1
  assert checked > 10_000

"""Config files by path: variants, load errors, typed overrides, flattening, sweeps."""

import ml_collections
import pytest

from launch.config_loader import ConfigError, apply_overrides, flatten, format_override_value, load_config, load_sweep, split_spec


def test_default_and_named_variant(sample_config):
  default = load_config(str(sample_config))
  small = load_config(f"{sample_config}:small")
  assert default.model.num_layers == 2
  assert small.model.num_layers == 1


def test_unknown_variant_lists_valid_ones(sample_config):
  with pytest.raises(ConfigError) as e:
    load_config(f"{sample_config}:huge")
  assert "'huge'" in str(e.value)
  assert "base, small" in str(e.value)


def test_split_spec():
  assert split_spec("configs/a.py") == ("configs/a.py", None)
  assert split_spec("configs/a.py:smoke") == ("configs/a.py", "smoke")
  with pytest.raises(ConfigError, match="names no variant"):
    split_spec("configs/a.py:")


def test_missing_file_names_path(tmp_path):
  missing = tmp_path / "nope.py"
  with pytest.raises(ConfigError, match="not found") as e:
    load_config(f"{missing}:smoke")
  assert str(missing) in str(e.value)


def test_missing_get_config(write_config):
  path = write_config("VARIANTS = ('a',)\n")
  with pytest.raises(ConfigError, match="get_config") as e:
    load_config(str(path))
  assert str(path) in str(e.value)


def test_syntax_error_names_path_and_line(write_config):
  path = write_config("import ml_collections\n\ndef get_config(arg=None)\n  return 1\n")
  with pytest.raises(ConfigError, match="syntax error") as e:
    load_config(str(path))
  assert str(path) in str(e.value) and "line 3" in str(e.value)


def test_import_error_inside_file_names_path(write_config):
  path = write_config("import module_that_does_not_exist_anywhere\n")
  with pytest.raises(ConfigError, match="ModuleNotFoundError") as e:
    load_config(str(path))
  assert str(path) in str(e.value)


def test_get_config_must_return_configdict(write_config):
  path = write_config("def get_config(arg=None):\n  return {'a': 1}\n")
  with pytest.raises(ConfigError, match="ConfigDict"):
    load_config(str(path))


def test_file_without_variants_receives_the_arg(write_config):
  path = write_config("""
      import ml_collections
      def get_config(arg=None):
        return ml_collections.ConfigDict({"arg": str(arg)})
      """)
  assert load_config(f"{path}:B/16,runlocal").arg == "B/16,runlocal"
  assert load_config(str(path)).arg == "None"


def test_file_defining_a_dataclass_loads(write_config):
  # dataclasses look their module up in sys.modules while the file executes.
  path = write_config("""
      import dataclasses
      import ml_collections
      @dataclasses.dataclass
      class Size:
        width: int = 3
      def get_config(arg=None):
        return ml_collections.ConfigDict({"width": Size().width})
      """)
  assert load_config(str(path)).width == 3


def test_flatten_gives_every_leaf_by_dotted_key(sample_config):
  keys = set(flatten(load_config(str(sample_config))))
  assert keys == {
      "seed", "name", "use_bias", "init_checkpoint", "max_steps", "mesh_shape", "layer_sizes",
      "optimizer.learning_rate", "optimizer.b1", "optimizer.schedule",
      "model.num_layers", "model.dropout", "model.dtype",
  }


@pytest.mark.parametrize(
    "key, text, expected",
    [
        ("seed", "3", 3),
        ("seed", "-7", -7),
        ("optimizer.learning_rate", "1e-4", 1e-4),
        ("optimizer.learning_rate", "3", 3.0),
        ("use_bias", "false", False),
        ("use_bias", "0", False),
        ("use_bias", "TRUE", True),
        ("use_bias", "1", True),
        ("name", "123", "123"),
        ("name", "with space", "with space"),
        ("mesh_shape", "(2, 4)", (2, 4)),
        ("mesh_shape", "[2, 4]", (2, 4)),
        ("layer_sizes", "(1, 2)", [1, 2]),
        ("init_checkpoint", "/a/b", "/a/b"),
        ("init_checkpoint", "3", 3),
        ("init_checkpoint", "(1, 'x')", (1, "x")),
        ("init_checkpoint", "None", None),
        ("max_steps", "10", 10),
        ("max_steps", "None", None),
    ],
)
def test_string_override_takes_field_type(sample_config, key, text, expected):
  config = apply_overrides(load_config(str(sample_config)), {key: text})
  value = flatten(config)[key]
  assert value == expected
  assert type(value) is type(expected)


@pytest.mark.parametrize(
    "key, text, type_name",
    [
        ("model.num_layers", "two", "int"),
        ("model.num_layers", "2.5", "int"),
        ("optimizer.learning_rate", "fast", "float"),
        ("use_bias", "yes", "bool"),
        ("mesh_shape", "5", "tuple"),
        ("mesh_shape", "(2, ", "tuple"),
        ("max_steps", "many", "int"),
    ],
)
def test_unconvertible_value_names_key_value_and_type(sample_config, key, text, type_name):
  with pytest.raises(ConfigError) as e:
    apply_overrides(load_config(str(sample_config)), {key: text})
  message = str(e.value)
  assert repr(key) in message and repr(text) in message and type_name in message


@pytest.mark.parametrize(
    "key, value, expected",
    [("optimizer.learning_rate", 2, 2.0), ("mesh_shape", [4, 2], (4, 2)), ("init_checkpoint", (1, "x"), (1, "x"))],
)
def test_typed_override_converts_only_losslessly(sample_config, key, value, expected):
  value_set = flatten(apply_overrides(load_config(str(sample_config)), {key: value}))[key]
  assert value_set == expected and type(value_set) is type(expected)


@pytest.mark.parametrize("key, value", [("model.num_layers", True), ("model.num_layers", 2.5), ("name", 3), ("use_bias", 1)])
def test_typed_override_of_wrong_type_is_rejected(sample_config, key, value):
  with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
    apply_overrides(load_config(str(sample_config)), {key: value})


@pytest.mark.parametrize(
    "key, nearest",
    [
        ("optimizer.learnin_rate", "optimizer.learning_rate"),
        ("num_layers", "model.num_layers"),
        ("model.num_layer", "model.num_layers"),
        ("optimizer.lr", "optimizer.learning_rate"),
    ],
)
def test_unknown_key_names_nearest_keys(sample_config, key, nearest):
  with pytest.raises(ConfigError) as e:
    apply_overrides(load_config(str(sample_config)), {key: "1"})
  message = str(e.value)
  assert f"unknown config key {key!r}" in message
  assert message.split("nearest valid keys: ")[1].split(", ")[0] == nearest


@pytest.mark.parametrize("key", ["seed.x", "optimizer.learning_rate.x", "model.heads.n"])
def test_key_below_a_leaf_or_missing_group_is_unknown(sample_config, key):
  with pytest.raises(ConfigError, match="unknown config key"):
    apply_overrides(load_config(str(sample_config)), {key: "1"})


def test_group_key_is_rejected_with_its_fields(sample_config):
  with pytest.raises(ConfigError, match="is a group") as e:
    apply_overrides(load_config(str(sample_config)), {"optimizer": "1"})
  assert "optimizer.learning_rate" in str(e.value)


def test_overrides_do_not_mutate_input(sample_config):
  config = load_config(str(sample_config))
  before = config.to_dict()
  new = apply_overrides(config, {"seed": "5", "model.num_layers": "8", "mesh_shape": "(4, 2)"})
  assert config.to_dict() == before
  assert (new.seed, new.model.num_layers, new.mesh_shape) == (5, 8, (4, 2))


def test_linked_fields_follow_an_override():
  config = ml_collections.ConfigDict({"width": 4})
  config.hidden = config.get_ref("width") * 2
  new = apply_overrides(config, {"width": "8"})
  assert new.hidden == 16 and config.hidden == 8


def test_frozen_config_stays_frozen():
  frozen = ml_collections.FrozenConfigDict({"a": 1, "b": {"c": 2.0}})
  new = apply_overrides(frozen, {"b.c": "3"})
  assert isinstance(new, ml_collections.FrozenConfigDict)
  assert new.b.c == 3.0 and frozen.b.c == 2.0


@pytest.mark.parametrize("value", [3, -1, 2.5e-4, 1e20, True, False, None, (2, -1), [1, 2], ("a b", 1.5), "plain", "with space", "123", "None"])
def test_format_override_value_parses_back(value):
  # A field of each value's kind, and a None-valued field, which accepts any literal.
  config = ml_collections.ConfigDict({"field": value, "free": None})
  for key in ("field", "free"):
    text = format_override_value(value)
    direct = apply_overrides(config, {key: value})[key]
    via_text = apply_overrides(config, {key: text})[key]
    assert via_text == direct and type(via_text) is type(direct), (key, value, text)


def test_load_sweep_returns_entries_checked_against_config(sample_config):
  runs = load_sweep(f"{sample_config}:small")
  assert len(runs) == 4
  assert runs[0] == {"optimizer.learning_rate": 3e-4, "model.num_layers": 4, "mesh_shape": (2, 4)}


def test_config_without_sweep_is_an_error(write_config):
  path = write_config("import ml_collections\ndef get_config(arg=None):\n  return ml_collections.ConfigDict({'a': 1})\n")
  with pytest.raises(ConfigError, match="get_sweep") as e:
    load_sweep(str(path))
  assert str(path) in str(e.value)


def test_sweep_with_unknown_key_names_entry_and_key(write_config):
  path = write_config("""
      import ml_collections
      def get_config(arg=None):
        return ml_collections.ConfigDict({"lr": 0.1, "steps": 10})
      def get_sweep():
        return [{"lr": 0.2}, {"stpes": 5}]
      """)
  with pytest.raises(ConfigError) as e:
    load_sweep(str(path))
  message = str(e.value)
  assert "sweep entry 1" in message and "'stpes'" in message and "steps" in message


def test_sweep_with_bad_value_type_is_an_error(write_config):
  path = write_config("""
      import ml_collections
      def get_config(arg=None):
        return ml_collections.ConfigDict({"steps": 10})
      def get_sweep():
        return [{"steps": "ten"}]
      """)
  with pytest.raises(ConfigError, match="sweep entry 0.*'ten'.*int"):
    load_sweep(str(path))


@pytest.mark.parametrize("body", ["return []", "return {'lr': 0.1}", "return [('lr', 0.1)]"])
def test_malformed_sweep_is_an_error(write_config, body):
  path = write_config(f"""
      import ml_collections
      def get_config(arg=None):
        return ml_collections.ConfigDict({{"lr": 0.1}})
      def get_sweep():
        {body}
      """)
  with pytest.raises(ConfigError, match="sweep|get_sweep"):
    load_sweep(str(path))

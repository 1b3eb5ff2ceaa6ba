"""Loads config files by path, applies typed overrides, loads sweeps.

A config file defines `get_config(arg=None) -> ml_collections.ConfigDict`, a module-level
`VARIANTS` tuple (first = default) and optionally `get_sweep() -> list[dict[str, Any]]`,
whose dicts map dotted keys ("optimizer.learning_rate") to values. A config spec names the
file and optionally a variant: `configs/lm_tiny.py:smoke`.

Override values that are strings are parsed into the type of the field they replace, so
command-line text and sweep values go through one set of rules:

  int, float      int("3"), float("1e-3")
  bool            true/false/1/0 (any case)
  str             the text unchanged
  tuple, list     a Python literal, "(2, 4)" or "[1, 2]"
  None-valued     a Python literal when the text is one ("3", "(1, 2)", "None"), else the text
  placeholder(T)  "None", or the text parsed as T

`format_override_value` renders a value so that parsing it gives the same value back.
"""

import ast
import copy
import difflib
import hashlib
import importlib.util
import pathlib
import sys
import types
from collections.abc import Mapping
from typing import Any

import ml_collections

_BOOL_WORDS = {"true": True, "1": True, "false": False, "0": False}


class ConfigError(ValueError):
  """A config spec, config file, override or sweep is invalid; the message says how to fix it."""


def _is_group(value: Any) -> bool:
  # ConfigDict is not registered as a collections.abc.Mapping.
  return isinstance(value, (ml_collections.ConfigDict, Mapping))


def split_spec(spec: str) -> tuple[str, str | None]:
  """Splits `path/to/file.py[:variant]` into the path and the variant (None when absent)."""
  path, colon, variant = spec.rpartition(":")
  if not colon or not path.endswith(".py"):
    return spec, None
  if not variant:
    raise ConfigError(f"config spec {spec!r} ends with ':' but names no variant; write {path}:VARIANT or {path}")
  return path, variant


def _import_file(path: str) -> types.ModuleType:
  """Imports a Python file by path, so config folders need not be importable packages."""
  file = pathlib.Path(path)
  if not file.is_file():
    raise ConfigError(f"config file not found: {path!r} (a config spec is path/to/file.py[:variant])")
  resolved = file.resolve()
  # One module name per file: reloading a file replaces its module instead of piling up.
  name = "_jaxlab_config_" + hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
  module_spec = importlib.util.spec_from_file_location(name, resolved)
  if module_spec is None or module_spec.loader is None:
    raise ConfigError(f"cannot import config file {path!r}: not a Python source file")
  module = importlib.util.module_from_spec(module_spec)
  sys.modules[name] = module  # dataclasses defined in the file look their module up here
  try:
    module_spec.loader.exec_module(module)
  except SyntaxError as e:
    sys.modules.pop(name, None)
    raise ConfigError(f"syntax error in config file {path!r}, line {e.lineno}: {e.msg}") from e
  except Exception as e:
    sys.modules.pop(name, None)
    raise ConfigError(f"importing config file {path!r} failed: {type(e).__name__}: {e}") from e
  return module


def _variants_of(module: types.ModuleType, path: str) -> tuple[str, ...] | None:
  variants = getattr(module, "VARIANTS", None)
  if variants is None:
    return None
  if isinstance(variants, str) or not all(isinstance(v, str) for v in variants) or not variants:
    raise ConfigError(f"{path}: VARIANTS must be a non-empty tuple of strings, got {variants!r}")
  return tuple(variants)


def _load(spec: str) -> tuple[types.ModuleType, ml_collections.ConfigDict]:
  path, variant = split_spec(spec)
  module = _import_file(path)
  get_config = getattr(module, "get_config", None)
  if not callable(get_config):
    raise ConfigError(f"config file {path!r} defines no get_config(arg=None) function")
  variants = _variants_of(module, path)
  if variant is not None and variants is not None and variant not in variants:
    raise ConfigError(f"unknown variant {variant!r} for {path}; valid variants: {', '.join(variants)}")
  config = get_config() if variant is None else get_config(variant)
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f"{path}: get_config returned {type(config).__name__}, expected an ml_collections.ConfigDict")
  return module, config


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads `path/to/file.py[:variant]`; without a variant, `get_config()` picks the default.

  A file without VARIANTS accepts any variant string and passes it to `get_config`.
  """
  return _load(spec)[1]


def flatten(config: ml_collections.ConfigDict | Mapping[str, Any]) -> dict[str, Any]:
  """Maps every leaf field to its value by dotted key; empty groups have no leaves."""
  flat: dict[str, Any] = {}

  def visit(node: Any, prefix: str) -> None:
    for key, value in node.items():
      if _is_group(value):
        visit(value, f"{prefix}{key}.")
      else:
        flat[f"{prefix}{key}"] = value

  visit(config, "")
  return flat


def _groups(config: ml_collections.ConfigDict) -> set[str]:
  groups: set[str] = set()

  def visit(node: Any, prefix: str) -> None:
    for key, value in node.items():
      if _is_group(value):
        groups.add(f"{prefix}{key}")
        visit(value, f"{prefix}{key}.")

  visit(config, "")
  return groups


def nearest_keys(key: str, valid_keys: list[str], limit: int = 5) -> list[str]:
  """Valid keys closest to `key`: same last component or its initials ("lr"), then by spelling."""
  last = key.rsplit(".", 1)[-1]

  def initials(name: str) -> str:
    return "".join(word[:1] for word in name.rsplit(".", 1)[-1].split("_"))

  same_leaf = [k for k in valid_keys if k.rsplit(".", 1)[-1] == last or initials(k) == last]
  by_spelling = difflib.get_close_matches(key, valid_keys, n=limit, cutoff=0.5)
  by_leaf = difflib.get_close_matches(last, [k.rsplit(".", 1)[-1] for k in valid_keys], n=limit, cutoff=0.6)
  leaf_matches = [k for k in valid_keys if k.rsplit(".", 1)[-1] in by_leaf]
  ordered = list(dict.fromkeys(same_leaf + by_spelling + leaf_matches))
  return ordered[:limit]


def _unknown_key_error(key: str, config: ml_collections.ConfigDict) -> ConfigError:
  if key in _groups(config):
    fields = [k for k in flatten(config) if k.startswith(key + ".")]
    return ConfigError(f"config key {key!r} is a group, not a field; override its fields instead, e.g. {', '.join(fields[:5])}")
  valid = sorted(flatten(config))
  near = nearest_keys(key, valid)
  hint = f"nearest valid keys: {', '.join(near)}" if near else f"valid keys include: {', '.join(valid[:10])}"
  return ConfigError(f"unknown config key {key!r}; {hint}")


def _type_name(expected: type) -> str:
  return "None (any Python literal)" if expected is type(None) else expected.__name__


def _bad_value(key: str, value: Any, expected: type, hint: str = "") -> ConfigError:
  hint = f" ({hint})" if hint else ""
  return ConfigError(f"cannot set config key {key!r} to {value!r}: expected {_type_name(expected)}{hint}")


def _parse_text(key: str, text: str, current: Any, expected: type) -> Any:
  """Parses command-line text into `expected`, the type of the field it replaces."""
  if expected is type(None):
    try:
      return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
      return text  # not a literal: an unquoted string such as a path
  if current is None and text == "None":
    return None  # an unset placeholder(T) may stay unset
  if expected is bool:
    if text.lower() not in _BOOL_WORDS:
      raise _bad_value(key, text, bool, "true, false, 1 or 0")
    return _BOOL_WORDS[text.lower()]
  if expected is int:
    try:
      return int(text)
    except ValueError:
      raise _bad_value(key, text, int) from None
  if expected is float:
    try:
      return float(text)
    except ValueError:
      raise _bad_value(key, text, float) from None
  if expected is str:
    return text
  try:
    parsed = ast.literal_eval(text)
  except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
    raise _bad_value(key, text, expected, "a Python literal such as (2, 4)") from None
  return _check_value(key, parsed, current, expected, shown=text)


def _check_value(key: str, value: Any, current: Any, expected: type, shown: Any = None) -> Any:
  """Checks a typed value against the field's type, converting where no information is lost."""
  shown = value if shown is None else shown
  if expected is type(None) or (value is None and current is None):
    return value
  if expected is bool:
    ok = isinstance(value, bool)
  elif expected is int:
    ok = isinstance(value, int) and not isinstance(value, bool)
  elif expected is float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    value = float(value) if ok else value
  elif expected in (tuple, list):
    ok = isinstance(value, (tuple, list))
    value = expected(value) if ok else value
  else:
    ok = isinstance(value, expected)
  if not ok:
    raise _bad_value(key, shown, expected)
  return value


def _copy(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  if isinstance(config, ml_collections.FrozenConfigDict):
    return ml_collections.ConfigDict(config)
  return copy.deepcopy(config)  # keeps FieldReferences linked inside the copy


def apply_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """Returns a copy of `config` with `overrides` (dotted key -> value) set; the input is untouched.

  String values are parsed into the field's type (module docstring); other values must
  already have it (an int is accepted for a float, a list for a tuple).
  """
  new = _copy(config)
  for key, value in overrides.items():
    parts = key.split(".")
    parent = new
    for part in parts[:-1]:
      child = parent.get(part) if _is_group(parent) else None
      if not _is_group(child):
        raise _unknown_key_error(key, new)
      parent = child
    leaf = parts[-1]
    if not isinstance(parent, ml_collections.ConfigDict) or leaf not in parent or _is_group(parent[leaf]):
      raise _unknown_key_error(key, new)
    current = parent[leaf]
    expected = parent.get_type(leaf)
    if isinstance(value, str):
      typed = _parse_text(key, value, current, expected)
    else:
      typed = _check_value(key, value, current, expected)
    try:
      parent[leaf] = typed
    except (TypeError, ValueError) as e:
      raise ConfigError(f"cannot set config key {key!r} to {value!r}: {e}") from e
  if isinstance(config, ml_collections.FrozenConfigDict):
    return ml_collections.FrozenConfigDict(new)
  return new


def format_override_value(value: Any) -> str:
  """Renders `value` as command-line text that `apply_overrides` parses back to `value`.

  Strings are passed through unchanged, so they are parsed exactly as the same string
  given to `apply_overrides` directly.
  """
  if isinstance(value, str):
    return value
  if isinstance(value, bool):
    return "True" if value else "False"  # also a literal, for None-valued fields
  if value is None or isinstance(value, (int, float, tuple, list)):
    return repr(value)
  raise ConfigError(f"cannot render override value {value!r} of type {type(value).__name__} as command-line text")


def load_sweep(spec: str) -> list[dict[str, Any]]:
  """Returns the runs of the config file's `get_sweep()`, each checked against the config."""
  module, config = _load(spec)
  path = split_spec(spec)[0]
  get_sweep = getattr(module, "get_sweep", None)
  if not callable(get_sweep):
    raise ConfigError(f"config file {path!r} defines no get_sweep() function, so it has no sweep")
  sweep = get_sweep()
  if isinstance(sweep, Mapping) or not isinstance(sweep, (list, tuple)):
    raise ConfigError(f"{path}: get_sweep must return a list of dicts, got {type(sweep).__name__}")
  if not sweep:
    raise ConfigError(f"{path}: get_sweep returned no runs")
  runs = []
  for index, entry in enumerate(sweep):
    if not _is_group(entry) or not all(isinstance(k, str) for k in entry):
      raise ConfigError(f"{path}: sweep entry {index} must map dotted keys to values, got {entry!r}")
    try:
      apply_overrides(config, entry)
    except ConfigError as e:
      raise ConfigError(f"{path}: sweep entry {index}: {e}") from e
    runs.append(dict(entry))
  return runs

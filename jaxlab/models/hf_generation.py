"""Token ids and generation settings of a Hugging Face checkpoint, kept from `load_pretrained` to `save_pretrained`.

config.json holds `bos_token_id`, `eos_token_id` (one id or several) and `pad_token_id`;
generation_config.json, next to it, holds what transformers' `generate` does by default (sampling,
temperature, top-p / top-k, stop ids, length limits, ...). A jaxlab model config keeps both: the
three ids as fields, generation_config.json as `generation_config`, a `GenerationSettings`. Every
exporter writes them back (config.json with the rest of the config, generation_config.json beside it,
each under a temporary name renamed into place), so a post-trained model generates in transformers
as the checkpoint it came from did.

A config built from scratch has None for all four: config.json gets null ids and no
generation_config.json is written (transformers then derives one from config.json's ids, as for
any checkpoint without that file).
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from jaxlab.files import read_json_object

GENERATION_CONFIG_NAME = "generation_config.json"
TOKEN_ID_KEYS = ("bos_token_id", "eos_token_id", "pad_token_id")
# The fields an exportable config carries; each is checked and frozen by `normalized_fields`.
EXPORT_FIELDS = TOKEN_ID_KEYS + ("generation_config",)


class GenerationSettings(Mapping[str, Any]):
  """The JSON object of a generation_config.json, read-only and hashable.

  A model config holding it stays usable as a static jit argument. Kept verbatim (key order
  aside): unknown keys and `transformers_version` are written back as they were read. Reading an
  entry returns a copy, so a nested list cannot be changed in place.

  Build it from a mapping, keywords, or both: `GenerationSettings({"do_sample": True}, top_k=20)`.
  Raises TypeError for a value JSON cannot hold (a set, an array, ...) and ValueError for NaN or
  infinity, naming the key.
  """

  __slots__ = ("_text", "_value")

  def __init__(self, settings: Mapping[str, Any] | None = None, /, **entries: Any):
    value = dict(settings or {}, **entries)
    for key, entry in value.items():
      if not isinstance(key, str):
        raise TypeError(f"GenerationSettings keys must be strings, got {key!r}")
      _check_json(key, entry)
    # Canonical text: equality and hash of two settings are those of the JSON they write.
    self._text = json.dumps(value, sort_keys=True, allow_nan=False)
    self._value = json.loads(self._text)

  def __getitem__(self, key: str) -> Any:
    return copy.deepcopy(self._value[key])

  def __iter__(self) -> Iterator[str]:
    return iter(self._value)

  def __len__(self) -> int:
    return len(self._value)

  def __eq__(self, other: object) -> bool:
    if isinstance(other, GenerationSettings):
      return self._text == other._text
    return NotImplemented

  def __hash__(self) -> int:
    return hash(self._text)

  def __repr__(self) -> str:
    return f"GenerationSettings({self._value!r})"

  def __reduce__(self):
    return GenerationSettings, (self._value,)

  def to_dict(self) -> dict[str, Any]:
    """A new JSON-ready dict of the settings (lists as lists)."""
    return json.loads(self._text)


def _check_json(where: str, value: Any) -> None:
  """Raises naming `where` unless `value` is a JSON value (None, bool, int, finite float, str, list, dict)."""
  if value is None or isinstance(value, (bool, int, str)):
    return
  if isinstance(value, float):
    if not math.isfinite(value):
      raise ValueError(f"GenerationSettings {where}={value!r}: NaN and infinity have no JSON form")
    return
  if isinstance(value, Mapping):
    for k, v in value.items():
      if not isinstance(k, str):
        raise TypeError(f"GenerationSettings {where} keys must be strings, got {k!r}")
      _check_json(f"{where}.{k}", v)
    return
  if isinstance(value, (list, tuple)):
    for i, v in enumerate(value):
      _check_json(f"{where}[{i}]", v)
    return
  raise TypeError(f"GenerationSettings {where} must be a JSON value, got a {type(value).__name__}: {value!r}")


def read_generation_config(directory) -> GenerationSettings | None:
  """The generation_config.json of a checkpoint directory, or None when it has none.

  Raises:
    `jaxlab.files.JSONFileError` (a ValueError): the file does not parse (file, line and column
      named) or is not a JSON object.
  """
  path = os.path.join(os.fspath(directory), GENERATION_CONFIG_NAME)
  if not os.path.isfile(path):
    return None
  return GenerationSettings(read_json_object(path))


def token_ids_from_hf(d: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """{bos/eos/pad key: value} of a config.json dict; a key the dict lacks takes `defaults`' value (else None).

  A key present as null stays None: transformers reads it so, whatever its class default.
  """
  defaults = defaults or {}
  return {key: d.get(key, defaults.get(key)) for key in TOKEN_ID_KEYS}


def token_ids_to_hf(config) -> dict[str, Any]:
  """config.json's {bos/eos/pad key: value} of a config with those fields (several eos ids as a list)."""
  ids = {key: getattr(config, key) for key in TOKEN_ID_KEYS}
  if isinstance(ids["eos_token_id"], tuple):
    ids["eos_token_id"] = list(ids["eos_token_id"])
  return ids


def _token_id(owner: str, name: str, value: Any) -> int | tuple[int, ...] | None:
  """`value` checked: None, an int, or (eos_token_id only) a sequence of ints, stored as a tuple.

  Negative ids pass: some hub configs hold pad_token_id=-1 and transformers loads them.
  """
  is_id = lambda v: isinstance(v, int) and not isinstance(v, bool)
  if value is None or is_id(value):
    return value
  if name == "eos_token_id" and isinstance(value, Sequence) and not isinstance(value, str):
    value = tuple(value)  # a list would make the config unhashable (it is a static jit argument)
    if all(is_id(v) for v in value):
      return value
  several = " or a sequence of them" if name == "eos_token_id" else ""
  raise ValueError(f"{owner}.{name} must be None or an int token id{several}, got {value!r}")


def normalized_fields(config, owner: str) -> dict[str, Any]:
  """{field: checked value} of the `EXPORT_FIELDS` a config dataclass has, for its `__post_init__`.

  Token ids as `_token_id` stores them; a generation_config mapping becomes `GenerationSettings`.

  Raises:
    ValueError: a token id that is not None, an int or (eos) ints; `owner` and the field named.
    TypeError: generation_config is neither None nor a mapping, or holds a non-JSON value.
  """
  fields = {name: _token_id(owner, name, getattr(config, name)) for name in TOKEN_ID_KEYS if hasattr(config, name)}
  settings = getattr(config, "generation_config", None)
  if settings is not None and not isinstance(settings, GenerationSettings):
    if not isinstance(settings, Mapping):
      raise TypeError(f"{owner}.generation_config must be None or a mapping (generation_config.json), "
                      f"got {type(settings).__name__}")
    settings = GenerationSettings(settings)
  if hasattr(config, "generation_config"):
    fields["generation_config"] = settings
  return fields

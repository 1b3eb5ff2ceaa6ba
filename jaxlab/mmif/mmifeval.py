"""MM-IFEval's benchmark files and a model's predictions for them, read, checked and matched.

The benchmark is two jsonl files (or one holding both), one row per line:

  C-Level (compose level)   {"id", "infer_type": "main", "tag": "C-Level", "instruction",
                             "constraints": [constraint objects, `jaxlab.mmif.records`], "image"}
  auxiliary C-Level rows    {"id" (the main row's), "infer_type": "aux_cmp_gpt", "del_cons": <key>,
                             "instruction", "constraints" (without that one), ...}: the model answers
                             them too; the answer is the "response without the constraint" that the
                             compare judge sets beside the main response for the cmp_gpt constraint
                             `del_cons`
  P-Level (perception)      {"id", "tag": "P-Level", "question", "answer": [gold strings], "image"}

A row without a tag is C-Level when it has "instruction" and P-Level when it has "question". The
image is the first present of `IMAGE_KEYS`; a relative path is resolved against `image_root` (by
default the items file's folder). A missing image file is not an error here: only a judge that
needs the image (`jaxlab.mmif.scoring`) refuses it.

Predictions are the same rows with a "prediction" string added, or just {"id", "infer_type"?,
"del_cons"?, "prediction"}; a row is matched to its prediction by (id, infer_type, del_cons), with the
level (the "tag") told apart when a prediction carries one, since C-Level and P-Level ids may coincide.

Every problem with a row (not JSON, a missing key, an unknown judge method, an unknown verify
function or bad parameters) raises a ValueError naming the file, the line and the problem.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jaxlab import files
from jaxlab.mmif.records import Constraint, ConstraintError, test_prompt
from jaxlab.mmif.taxonomy import COMPARE, RULE
from jaxlab.mmif.verifiers import validate_verify_funcs

C_LEVEL, P_LEVEL = "C-Level", "P-Level"
MAIN, AUX = "main", "aux_cmp_gpt"
IMAGE_KEYS: tuple[str, ...] = (
    "image", "filename", "img_name", "image_name", "image_local_name", "image_path", "image_local_path",
    "img", "img_path", "img_local_path", "img_local_name")
_LISTED = 5  # ids named in a missing / extra message before "and N more"


class MMIFEvalInputError(ValueError):
  """A benchmark or predictions file that cannot be used as written; the message says where and why."""


@dataclasses.dataclass(frozen=True)
class AuxPrompt:
  """An auxiliary row: the item's prompt with the cmp_gpt constraint `del_cons` removed."""

  del_cons: str
  instruction: str
  constraints: tuple[Constraint, ...]
  where: str

  @property
  def prompt(self) -> str:
    return test_prompt(self.instruction, self.constraints)


@dataclasses.dataclass(frozen=True)
class ComposeItem:
  """A C-Level item, with its auxiliary rows and, once attached, the model's predictions.

  `prediction` is None while none is attached (or, under `allow_missing`, when the model has none);
  `aux_predictions` maps a cmp_gpt constraint's key to the answer without that constraint.
  """

  id: Any
  instruction: str
  constraints: tuple[Constraint, ...]
  image: str | None
  where: str
  aux: tuple[AuxPrompt, ...] = ()
  prediction: str | None = None
  aux_predictions: Mapping[str, str] = dataclasses.field(default_factory=dict)

  level = C_LEVEL

  @property
  def prompt(self) -> str:
    return test_prompt(self.instruction, self.constraints)


@dataclasses.dataclass(frozen=True)
class PerceptionItem:
  """A P-Level item: a question about the image and its gold answer elements."""

  id: Any
  question: str
  answer: tuple[str, ...]
  image: str | None
  where: str
  prediction: str | None = None

  level = P_LEVEL

  @property
  def prompt(self) -> str:
    return self.question


Item = ComposeItem | PerceptionItem


@dataclasses.dataclass(frozen=True)
class Prediction:
  """One predictions row: the model's answer to the benchmark row (id, infer_type, del_cons)."""

  id: Any
  infer_type: str
  del_cons: str | None
  prediction: str
  where: str
  level: str | None = None  # the row's tag, when the predictions file carries one


# -- reading the benchmark ------------------------------------------------------------------------


def _bad(where: str, problem: str) -> MMIFEvalInputError:
  return MMIFEvalInputError(f"{where}: {problem}")


def _string(row: Mapping[str, Any], key: str, where: str) -> str:
  value = row.get(key)
  if not isinstance(value, str):
    raise _bad(where, f"missing or non-string {key!r} (keys: {', '.join(sorted(row))})")
  return value


def _row_id(row: Mapping[str, Any], where: str) -> Any:
  value = row.get("id")
  if isinstance(value, bool) or not isinstance(value, (str, int)):
    raise _bad(where, f"missing or non-string, non-integer 'id' (keys: {', '.join(sorted(row))})")
  return value


def _infer_type(row: Mapping[str, Any], where: str) -> str:
  value = row.get("infer_type") or MAIN
  if value not in (MAIN, AUX):
    raise _bad(where, f"unknown infer_type {value!r}; known: {MAIN}, {AUX}")
  return value


def _level_of(row: Mapping[str, Any], where: str) -> str:
  tag = row.get("tag")
  if tag in (C_LEVEL, P_LEVEL):
    return tag
  if tag is not None:
    raise _bad(where, f"unknown tag {tag!r}; known: {C_LEVEL}, {P_LEVEL}")
  if "instruction" in row:
    return C_LEVEL
  if "question" in row:
    return P_LEVEL
  raise _bad(where, "no 'tag' and neither 'instruction' (C-Level) nor 'question' (P-Level)")


def _image(row: Mapping[str, Any], image_root: str, where: str) -> str | None:
  """The row's image path resolved against `image_root`; None when the row names no image."""
  for key in IMAGE_KEYS:
    if key in row and row[key] is not None:
      value = row[key]
      if not isinstance(value, str) or not value:
        raise _bad(where, f"image key {key!r} must be a non-empty string, got {value!r}")
      return value if os.path.isabs(value) else os.path.join(image_root, value)
  return None


def _constraints(row: Mapping[str, Any], where: str, *, validate: bool) -> tuple[Constraint, ...]:
  records = row.get("constraints")
  if not isinstance(records, list):
    raise _bad(where, "'constraints' must be a list of constraint objects")
  constraints = []
  for i, record in enumerate(records):
    at = f"{where} constraint {i}"
    constraint = Constraint.from_json(record, at)  # a ConstraintError already names `at`
    if validate and constraint.method == RULE:
      validate_verify_funcs(constraint.verify_funcs, f"{at} ({constraint.key})")
    constraints.append(constraint)
  return tuple(constraints)


def _compose_item(row: Mapping[str, Any], image_root: str, where: str) -> ComposeItem:
  constraints = _constraints(row, where, validate=True)
  if not constraints:
    raise _bad(where, "a C-Level item needs at least one constraint")
  compare_keys = [c.key for c in constraints if c.method == COMPARE]
  repeated = sorted({k for k in compare_keys if compare_keys.count(k) > 1})
  if repeated:  # the auxiliary rows name a cmp_gpt constraint by its key
    raise _bad(where, f"cmp_gpt constraint keys must be unique within an item; repeated: {', '.join(repeated)}")
  return ComposeItem(_row_id(row, where), _string(row, "instruction", where), constraints,
                     _image(row, image_root, where), where)


def _perception_item(row: Mapping[str, Any], image_root: str, where: str) -> PerceptionItem:
  answer = row.get("answer")
  if isinstance(answer, str):
    answer = [answer]
  if not isinstance(answer, list) or not answer or not all(isinstance(a, (str, int, float)) for a in answer):
    raise _bad(where, "'answer' must be a non-empty list of gold strings")
  return PerceptionItem(_row_id(row, where), _string(row, "question", where), tuple(str(a) for a in answer),
                        _image(row, image_root, where), where)


def _aux_prompt(row: Mapping[str, Any], main: ComposeItem, where: str) -> AuxPrompt:
  """The auxiliary row's prompt; its instruction and constraints default to the main row's less `del_cons`."""
  del_cons = _string(row, "del_cons", where)
  target = [c for c in main.constraints if c.key == del_cons]
  if not target:
    raise _bad(where, f"del_cons {del_cons!r} names no constraint of item {main.id!r} ({main.where}); "
                      f"its constraints: {', '.join(c.key for c in main.constraints)}")
  if target[0].method != COMPARE:
    raise _bad(where, f"del_cons {del_cons!r} is a {target[0].method} constraint; auxiliary rows serve "
                      f"cmp_gpt constraints only")
  instruction = row.get("instruction", main.instruction)
  if not isinstance(instruction, str):
    raise _bad(where, "'instruction' must be a string")
  if "constraints" in row:
    constraints = _constraints(row, where, validate=False)
  else:
    constraints = tuple(c for c in main.constraints if c.key != del_cons)
  return AuxPrompt(del_cons, instruction, constraints, where)


def _where(path: str, number: int) -> str:
  return f"{path} line {number}"


def _numbered_rows(path: str) -> Iterable[tuple[int, dict[str, Any]]]:
  """(line number, object) of each non-blank line; a line that is not a JSON object is named."""
  rows = files.read_jsonl_objects(path)  # names the file and line of broken JSON
  with open(path, encoding="utf-8") as f:
    numbers = [n for n, line in enumerate(f, 1) if line.strip()]
  return zip(numbers, rows, strict=True)


def read_mmifeval(path: str | os.PathLike, *, image_root: str | os.PathLike | None = None) -> list[Item]:
  """The C-Level and P-Level items of an MM-IFEval jsonl file, in file order.

  Auxiliary rows are attached to their item (`ComposeItem.aux`), wherever they sit in the file.

  Raises:
    FileNotFoundError: no such file.
    ValueError (MMIFEvalInputError, ConstraintError, JSONFileError): a bad row, named by file and line.
  """
  path = os.fspath(path)
  root = os.fspath(image_root) if image_root is not None else os.path.dirname(os.path.abspath(path))
  items: list[Item] = []
  main_rows: dict[tuple[str, str], tuple[int, ComposeItem | PerceptionItem]] = {}
  aux_rows: list[tuple[str, dict[str, Any]]] = []
  for number, row in _numbered_rows(path):
    where = _where(path, number)
    try:
      level = _level_of(row, where)
      infer_type = _infer_type(row, where)
      if infer_type == AUX:
        if level != C_LEVEL:
          raise _bad(where, f"a {level} row cannot be an {AUX} row")
        _row_id(row, where)
        aux_rows.append((where, row))
        continue
      item = (_compose_item if level == C_LEVEL else _perception_item)(row, root, where)
    except ConstraintError as e:
      message = str(e)
      raise ConstraintError(message if where in message else f"{where}: {message}") from None
    key = (level, str(item.id))
    if key in main_rows:
      raise _bad(where, f"{level} id {item.id!r} repeats the row at {items[main_rows[key][0]].where}")
    main_rows[key] = (len(items), item)
    items.append(item)
  _join_aux_rows(items, main_rows, aux_rows)
  return items


def _join_aux_rows(items: list[Item], main_rows: Mapping[tuple[str, str], tuple[int, Item]],
                   aux_rows: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
  """Adds each auxiliary row to its C-Level item (in place in `items`)."""
  added: dict[int, list[AuxPrompt]] = {}
  for where, row in aux_rows:
    found = main_rows.get((C_LEVEL, str(row["id"])))
    if found is None:
      raise _bad(where, f"{AUX} row for id {row['id']!r}, which has no main C-Level row in this file")
    index, main = found
    try:
      aux = _aux_prompt(row, main, where)
    except ConstraintError as e:
      raise ConstraintError(f"{where}: {e}" if where not in str(e) else str(e)) from None
    siblings = added.setdefault(index, [])
    for other in siblings:
      if other.del_cons == aux.del_cons:
        raise _bad(where, f"a second {AUX} row for id {main.id!r}, del_cons {aux.del_cons!r} "
                          f"(the first: {other.where})")
    siblings.append(aux)
  for index, aux in added.items():
    items[index] = dataclasses.replace(items[index], aux=tuple(aux))


# -- predictions ----------------------------------------------------------------------------------


def read_predictions(path: str | os.PathLike) -> list[Prediction]:
  """The predictions in a jsonl file: full benchmark rows with "prediction", or just the matching keys.

  Raises:
    FileNotFoundError: no such file.
    ValueError (MMIFEvalInputError, JSONFileError): a bad row, named by file and line.
  """
  path = os.fspath(path)
  predictions = []
  for number, row in _numbered_rows(path):
    where = _where(path, number)
    infer_type = _infer_type(row, where)
    del_cons = _string(row, "del_cons", where) if infer_type == AUX else None
    level = row.get("tag")
    if level is not None and level not in (C_LEVEL, P_LEVEL):
      raise _bad(where, f"unknown tag {level!r}; known: {C_LEVEL}, {P_LEVEL}")
    if infer_type == AUX:
      level = C_LEVEL
    predictions.append(Prediction(_row_id(row, where), infer_type, del_cons,
                                  _string(row, "prediction", where), where, level))
  return predictions


def _describe(level: str | None, item_id: Any, del_cons: str | None) -> str:
  text = f"{level + ' ' if level else ''}id {item_id!r}"
  return text + (f" ({AUX}, del_cons {del_cons!r})" if del_cons is not None else "")


def _listing(descriptions: Sequence[str]) -> str:
  shown = ", ".join(descriptions[:_LISTED])
  return shown + (f" and {len(descriptions) - _LISTED} more" if len(descriptions) > _LISTED else "")


def _expected_rows(items: Sequence[Item]) -> dict[tuple[str, str, str | None], str]:
  """Every benchmark row that needs a prediction, keyed (level, id, del_cons), with its description."""
  expected: dict[tuple[str, str, str | None], str] = {}
  seen: dict[tuple[str, str], str] = {}
  for item in items:
    key = (item.level, str(item.id))
    if key in seen:
      raise MMIFEvalInputError(f"{item.level} id {item.id!r} appears twice: {seen[key]} and {item.where}")
    seen[key] = item.where
    expected[(item.level, str(item.id), None)] = _describe(item.level, item.id, None)
    for aux in getattr(item, "aux", ()):
      expected[(item.level, str(item.id), aux.del_cons)] = _describe(item.level, item.id, aux.del_cons)
  return expected


def _prediction_key(prediction: Prediction, levels_of_id: Mapping[str, set[str]]) -> tuple[str | None, str, str | None]:
  """(level, id, del_cons) of a prediction; its level is its tag, or the only level holding its id."""
  level = prediction.level
  if level is None:
    candidates = levels_of_id.get(str(prediction.id), set())
    if len(candidates) > 1:
      raise MMIFEvalInputError(f"{prediction.where}: id {prediction.id!r} is both a C-Level and a P-Level id; "
                               f"the prediction needs a 'tag' to say which")
    level = next(iter(candidates), None)
  return level, str(prediction.id), prediction.del_cons


def attach_predictions(items: Sequence[Item], predictions: Sequence[Prediction], *,
                       allow_missing: bool = False) -> list[Item]:
  """The items with their predictions (and auxiliary predictions) set.

  Every row of the benchmark needs exactly one prediction, and every prediction a row. Without
  `allow_missing`, a missing one is an error; with it, the item keeps `prediction=None` (or lacks
  the auxiliary answer) and scoring reports it as a gap, never as a 0. Extra predictions and
  repeated ones are always errors.

  Raises:
    MMIFEvalInputError (a ValueError): missing, extra or repeated predictions, with (the first few) ids.
  """
  expected = _expected_rows(items)
  levels_of_id: dict[str, set[str]] = {}
  for level, item_id, _ in expected:
    levels_of_id.setdefault(item_id, set()).add(level)
  found: dict[tuple[str, str, str | None], Prediction] = {}
  extra: list[str] = []
  for prediction in predictions:
    key = _prediction_key(prediction, levels_of_id)
    if key not in expected:
      extra.append(_describe(key[0], prediction.id, prediction.del_cons) + f" ({prediction.where})")
      continue
    if key in found:
      raise MMIFEvalInputError(f"two predictions for {expected[key]}: {found[key].where} and {prediction.where}")
    found[key] = prediction
  missing = [text for key, text in expected.items() if key not in found]
  problems = []
  if extra:
    problems.append(f"{len(extra)} prediction(s) match no benchmark row: {_listing(extra)}")
  if missing and not allow_missing:
    problems.append(f"{len(missing)} benchmark row(s) have no prediction: {_listing(missing)} "
                    f"(allow_missing=True, or --allow-missing, scores the rest and reports these as gaps)")
  if problems:
    raise MMIFEvalInputError("; ".join(problems))
  return [_with_predictions(item, found) for item in items]


def _with_predictions(item: Item, found: Mapping[tuple[str, str, str | None], Prediction]) -> Item:
  main = found.get((item.level, str(item.id), None))
  changes: dict[str, Any] = {"prediction": main.prediction if main else None}
  if isinstance(item, ComposeItem):
    changes["aux_predictions"] = {
        aux.del_cons: found[(item.level, str(item.id), aux.del_cons)].prediction
        for aux in item.aux if (item.level, str(item.id), aux.del_cons) in found}
  return dataclasses.replace(item, **changes)


def read_scoring_inputs(items_paths: Sequence[str | os.PathLike], predictions_paths: Sequence[str | os.PathLike], *,
                        image_root: str | os.PathLike | None = None, allow_missing: bool = False) -> list[Item]:
  """The items of all `items_paths` with the predictions of all `predictions_paths` attached."""
  items: list[Item] = []
  for path in items_paths:
    items.extend(read_mmifeval(path, image_root=image_root))
  predictions: list[Prediction] = []
  for path in predictions_paths:
    predictions.extend(read_predictions(path))
  return attach_predictions(items, predictions, allow_missing=allow_missing)

"""Readers for Visual-ARFT's released MAT data (HF dataset `laolao77/MAT`) as jaxlab records.

The released layout, with the keys Visual-ARFT's own code reads (`specs/specs-models.md` §4):

    MAT-Benchmark/MAT-Search.json          [{"id", "question", "answer", "image_path"}, …]     150 items
    MAT-Benchmark/MAT-Search-image/        its images ("image_path" is relative to here)
    MAT-Benchmark/MAT-Coding.json          [{"id", "question", "answers", "ori_image_path",
                                             "processed_image_path", "type", "split"}, …]      200 items
    MAT-Benchmark/MAT-Coding-image/
    MAT-Training/rft_agent_search_20.json  [{"image_path", "problem", "solution"}, …]          63 samples
    MAT-Training/rft_agent_code_1_2k.json  [{"type", "image_path", "problem", "context",
                                             "solution", "gt"}, …]
    MAT-Training/<json name>_images/       the training images

Benchmark: "answer"/"answers" is one string or a list of aliases. A coding item shows the
model "processed_image_path" (the degraded image), except a crop item ("type"[0] == "crop"),
which shows "ori_image_path". The split is the record's "split" when it has one; otherwise the
evaluation notebooks' rule, by position in the file: the first 75 MAT-Search items and the first
70 MAT-Coding items are "simple", the rest "hard".

Training: every record is one decision of a gold trajectory. "problem" is the user text after
the system prompt (`<query> … </query>`; for search it goes on with the gold turns so far and
their `<information>` replies); "solution" is the reward's reference. Coding records add "type"
(pre_problem, pre_code or pre_answer), "context" (the chain so far, pre_code and pre_answer
only) and "gt" (the full gold turn, `<think>` included, which "solution" may lack). The picture
of one coding question is `<name>_proc.<ext>` (degraded) until the code turn has run and
`<name>_ori.<ext>` (clean) after it (the released file names; Visual-ARFT's code does not say).

`read_mat_training_records` returns the records as they are; `read_mat_training` groups them
into `Trajectory`s and returns one `StepSample` per record.

Bad input raises, naming the file and record (line, for jsonl): FileNotFoundError for a missing
file or image, ValueError for broken JSON, a missing or mistyped key, or an image that does not
decode (`ImageDecodeError`). With `skip_bad_images=True`, records whose image is missing or does
not decode are left out instead, and the readers return `(records, number_left_out)`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from jaxlab.agent.records import NO_OBSERVATION, TASKS, EvalItem, Observation, StepSample, Trajectory
from jaxlab.agent.tags import parse_step

log = logging.getLogger(__name__)

SIMPLE_COUNT = {"search": 75, "coding": 70}  # items [:n] are "simple" in the evaluation notebooks
BENCHMARK_IMAGE_DIRS = {"search": "MAT-Search-image", "coding": "MAT-Coding-image"}
ANSWER_KEYS = {"search": "answer", "coding": "answers"}
CODING_STEP_TYPES = ("pre_problem", "pre_code", "pre_answer")

# Visual-ARFT's coding loop writes the closing tag as `<query>` too.
_QUERY = re.compile(r"<query>(?P<question>.*?)(?:</query>|<query>)", re.DOTALL)
_TURN = re.compile(r"<think>.*?</think>\s*<(search|problem|code|answer)>.*?</\1>", re.DOTALL)
_PICTURE_SUFFIX = re.compile(r"_(proc|ori)$")


class ImageDecodeError(ValueError):
  """An image file that exists but does not decode; the message names it and its record."""


# ------------------------------------------------------------------------------------------------
# JSON records and fields


def _read_records(path: Path) -> list[tuple[str, dict[str, Any]]]:
  """(where, record) pairs of a JSON array or jsonl file; `where` names the file and record or line."""
  if not path.is_file():
    raise FileNotFoundError(f"no MAT file at {path}")
  try:
    text = path.read_text(encoding="utf-8")
  except UnicodeDecodeError as e:
    raise ValueError(f"{path} is not UTF-8 text (byte {e.start})") from None
  if not text.strip():
    raise ValueError(f"{path} is empty")
  pairs = []
  if text.lstrip().startswith("["):
    try:
      value = json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    pairs = [(f"{path} record {i}", record) for i, record in enumerate(value)]
  else:
    for number, line in enumerate(text.splitlines(), 1):
      if not line.strip():
        continue
      try:
        pairs.append((f"{path} line {number}", json.loads(line)))
      except json.JSONDecodeError as e:
        raise ValueError(f"{path} line {number} is not valid JSON: {e.msg} (column {e.colno})") from None
  if not pairs:
    raise ValueError(f"{path} holds no records")
  named = []
  for where, record in pairs:
    if not isinstance(record, dict):
      raise ValueError(f"{where} must be a JSON object, got {type(record).__name__}")
    named.append((f"{where} (id {record['id']!r})" if "id" in record else where, record))
  return named


def _field(record: dict[str, Any], key: str, where: str, types: type | tuple[type, ...]) -> Any:
  if key not in record:
    raise ValueError(f"{where}: missing key {key!r} (it has {sorted(record)})")
  value = record[key]
  types = types if isinstance(types, tuple) else (types,)
  if not isinstance(value, types) or isinstance(value, bool):
    wanted = " or ".join(t.__name__ for t in types)
    raise ValueError(f"{where}: {key!r} must be {wanted}, got {type(value).__name__} {value!r:.80}")
  return value


def _answers(record: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
  value = _field(record, key, where, (str, list))
  aliases = [value] if isinstance(value, str) else value
  if not aliases or any(isinstance(a, bool) or not isinstance(a, (str, int, float)) for a in aliases):
    raise ValueError(f"{where}: {key!r} must be a string or a non-empty list of strings, got {value!r:.80}")
  return tuple(str(a) for a in aliases)


def _check_task(task: str) -> str:
  if task not in TASKS:
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")
  return task


def _infer_task(path: Path, record: dict[str, Any], coding_keys: tuple[str, ...], search_keys: tuple[str, ...]) -> str:
  """From the file name (MAT-Search.json, rft_agent_code_1_2k.json, …), else from the first record's keys."""
  name = path.name.lower()
  if ("search" in name) != ("cod" in name):
    return "search" if "search" in name else "coding"
  if any(key in record for key in coding_keys):
    return "coding"
  if all(key in record for key in search_keys):
    return "search"
  raise ValueError(f"cannot tell whether {path} is a search or a coding file; pass task=")


# ------------------------------------------------------------------------------------------------
# Images


class _Images:
  """Finds and decodes images by their released relative names; each file is decoded once."""

  def __init__(self, json_path: Path, image_root: str | Path | None, default_dir: str):
    base = json_path.parent
    self.roots = [Path(image_root)] if image_root is not None else [base / default_dir, base]
    self._decoded: dict[Path, np.ndarray] = {}

  def find(self, name: str, where: str) -> Path:
    if not name:
      raise ValueError(f"{where}: empty image path")
    candidates = [Path(name)] if Path(name).is_absolute() else [root / name for root in self.roots]
    for candidate in candidates:
      if candidate.is_file():
        return candidate
    raise FileNotFoundError(f"{where}: image {name!r} not found (looked for {', '.join(map(str, candidates))})")

  def load(self, path: Path, where: str) -> np.ndarray:
    """uint8 [H, W, 3], read-only (it may be shared by several records)."""
    if path not in self._decoded:
      try:
        with Image.open(path) as image:
          array = np.array(image.convert("RGB"), dtype=np.uint8)
      except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageDecodeError(f"{where}: image {path} cannot be decoded ({type(e).__name__}: {e})") from None
      array.flags.writeable = False
      self._decoded[path] = array
    return self._decoded[path]


def _report_skipped(path: Path, skipped: list[str]) -> None:
  if skipped:
    log.warning("%s: left out %d record(s) with a missing or undecodable image, e.g. %s", path, len(skipped),
                "; ".join(skipped[:3]))


# ------------------------------------------------------------------------------------------------
# Benchmark


def read_mat_benchmark(path: str | Path, *, image_root: str | Path | None = None, task: str | None = None,
                       skip_bad_images: bool = False) -> list[EvalItem] | tuple[list[EvalItem], int]:
  """The items of MAT-Search.json or MAT-Coding.json (module docstring), in file order.

  Args:
    path: the benchmark file (a JSON array as released, or jsonl).
    image_root: the folder the records' image paths are relative to; by default MAT-Search-image/
      or MAT-Coding-image/ beside the file, else the file's own folder.
    task: "search" or "coding"; inferred from the file name, else from the keys, when None.
    skip_bad_images: leave out items whose image is missing or does not decode, and return
      `(items, number_left_out)`; by default such an image raises.

  Returns:
    EvalItems: id as a string, the question verbatim, the image as uint8 [H, W, 3], the gold
    answer and its aliases, split "simple" or "hard".

  Raises:
    FileNotFoundError: no such file, or (unless skipped) a missing image.
    ValueError: broken JSON, a missing or mistyped key, a repeated id, an unknown split, or
      (`ImageDecodeError`, unless skipped) an image that does not decode.
  """
  path = Path(path)
  records = _read_records(path)
  task = _check_task(task) if task is not None else _infer_task(
      path, records[0][1], ("answers", "processed_image_path", "ori_image_path"), ("answer", "image_path"))
  images = _Images(path, image_root, BENCHMARK_IMAGE_DIRS[task])
  items, skipped, seen = [], [], {}
  for position, (where, record) in enumerate(records):
    item_id = str(_field(record, "id", where, (str, int)))
    if item_id in seen:
      raise ValueError(f"{where}: id {item_id!r} is already used by {seen[item_id]}")
    seen[item_id] = where
    question = _field(record, "question", where, str)
    answers = _answers(record, ANSWER_KEYS[task], where)
    split = _benchmark_split(record, position, task, where)
    try:
      image = images.load(images.find(_benchmark_image_name(record, task, where), where), where)
    except (FileNotFoundError, ImageDecodeError) as e:
      if not skip_bad_images:
        raise
      skipped.append(str(e))
      continue
    items.append(EvalItem(item_id, task, question, image, answers, split))
  if skip_bad_images:
    _report_skipped(path, skipped)
    return items, len(skipped)
  return items


def _benchmark_image_name(record: dict[str, Any], task: str, where: str) -> str:
  if task == "search":
    return _field(record, "image_path", where, str)
  kinds = _field(record, "type", where, (list, str))
  first = kinds if isinstance(kinds, str) else (kinds[0] if kinds else None)
  if not isinstance(first, str):
    raise ValueError(f"{where}: 'type' must name the degradation(s), got {kinds!r}")
  # A crop item asks about a region of the full image; the others show the degraded one.
  return _field(record, "ori_image_path" if first == "crop" else "processed_image_path", where, str)


def _benchmark_split(record: dict[str, Any], position: int, task: str, where: str) -> str:
  if "split" not in record:
    return "simple" if position < SIMPLE_COUNT[task] else "hard"
  split = record["split"]
  if split not in ("simple", "hard"):
    raise ValueError(f"{where}: 'split' must be 'simple' or 'hard', got {split!r}")
  return split


# ------------------------------------------------------------------------------------------------
# Training records


@dataclasses.dataclass(frozen=True)
class MatTrainingRecord:
  """One released single-step training sample, as Visual-ARFT's trainer reads it.

  Attributes:
    where: the file and record (or line) it came from.
    task: "search" or "coding".
    step_type: the record's "type" (pre_problem, pre_code, pre_answer); search records have
      none, so theirs is "pre_" + the gold turn's action (pre_search, pre_answer).
    question: the question from the `<query>` block of `prompt`.
    prompt: the record's "problem": the user text after the system prompt.
    context: the record's "context" (coding pre_code and pre_answer: the chain so far), else "".
    solution: the record's "solution", the reference of the released rewards.
    gold_step: the whole gold turn, `<think>` included: "gt" when it is one, else "solution".
    image_name: the record's "image_path" as released.
    image_path: where that image was found.
    image: uint8 [H, W, 3] as stored, read-only (the released trainer resizes it to 720×720).
  """

  where: str
  task: str
  step_type: str
  question: str
  prompt: str
  context: str
  solution: str
  gold_step: str
  image_name: str
  image_path: Path
  image: np.ndarray

  @property
  def kind(self) -> str:
    """The gold turn's action ("problem", "code", "search", "answer"; "" when malformed)."""
    return parse_step(self.gold_step).action


def _split_query(text: str) -> tuple[str, str]:
  """(question, the text after it); without a `<query>` tag the question is what precedes the first turn."""
  match = _QUERY.search(text)
  if match:
    return match["question"].strip(), text[match.end():]
  first = text.find("<think>")
  return (text if first < 0 else text[:first]).strip(), ("" if first < 0 else text[first:])


def _chain(text: str) -> tuple[list[str], list[str]]:
  """The gold turns in a chain, and the text after each up to the next turn (the environment's reply)."""
  turns = list(_TURN.finditer(text))
  ends = [m.start() for m in turns[1:]] + [len(text)]
  return [m.group(0) for m in turns], [text[m.end():end].strip() for m, end in zip(turns, ends)]


def read_mat_training_records(path: str | Path, *, image_root: str | Path | None = None, task: str | None = None,
                              skip_bad_images: bool = False
                              ) -> list[MatTrainingRecord] | tuple[list[MatTrainingRecord], int]:
  """The records of rft_agent_search_20.json or rft_agent_code_1_2k.json, as released, in file order.

  Args:
    path: the training file (a JSON array as released, or jsonl).
    image_root: the folder the records' "image_path" is relative to; by default
      `<json name>_images/` beside the file, else the file's own folder.
    task: "search" or "coding"; inferred from the file name, else from the keys, when None.
    skip_bad_images: leave out records whose image is missing or does not decode, and return
      `(records, number_left_out)`; by default such an image raises.

  Raises:
    FileNotFoundError: no such file, or (unless skipped) a missing image.
    ValueError: broken JSON, a missing or mistyped key, an unknown step type, a prompt without
      a question, or (`ImageDecodeError`, unless skipped) an image that does not decode.
  """
  records, skipped = _load_training(Path(path), image_root, task, skip_bad_images)
  if skip_bad_images:
    _report_skipped(Path(path), [message for message, _ in skipped])
    return records, len(skipped)
  return records


def _load_training(path: Path, image_root: str | Path | None, task: str | None, skip_bad_images: bool
                   ) -> tuple[list[MatTrainingRecord], list[tuple[str, tuple[str, str]]]]:
  """The records, and (message, group key) of each one left out for its image."""
  records = _read_records(path)
  task = _check_task(task) if task is not None else _infer_task(
      path, records[0][1], ("type", "gt", "context"), ("problem", "solution", "image_path"))
  images = _Images(path, image_root, f"{path.stem}_images")
  out, skipped = [], []
  for where, record in records:
    row = _training_fields(record, task, where)
    try:
      image_path = images.find(row["image_name"], where)
      image = images.load(image_path, where)
    except (FileNotFoundError, ImageDecodeError) as e:
      if not skip_bad_images:
        raise
      skipped.append((str(e), _group_key(row["question"], row["image_name"])))
      continue
    out.append(MatTrainingRecord(where=where, task=task, image_path=image_path, image=image, **row))
  return out, skipped


def _training_fields(record: dict[str, Any], task: str, where: str) -> dict[str, str]:
  prompt = _field(record, "problem", where, str)
  solution = _field(record, "solution", where, str)
  image_name = _field(record, "image_path", where, str)
  question, _ = _split_query(prompt)
  if not question:
    raise ValueError(f"{where}: 'problem' holds no question: {prompt!r:.80}")
  if task == "search":
    action = parse_step(solution).action
    return {"step_type": f"pre_{action}" if action else "", "question": question, "prompt": prompt, "context": "",
            "solution": solution, "gold_step": solution, "image_name": image_name}
  step_type = _field(record, "type", where, str)
  if step_type not in CODING_STEP_TYPES:
    raise ValueError(f"{where}: 'type' must be one of {CODING_STEP_TYPES}, got {step_type!r}")
  # The released trainer reads "context" for pre_code and pre_answer only (absent or null otherwise).
  context = _field(record, "context", where, str) if step_type != "pre_problem" else (record.get("context") or "")
  gt = _field(record, "gt", where, str)
  return {"step_type": step_type, "question": question, "prompt": prompt, "context": str(context),
          "solution": solution, "gold_step": gt if parse_step(gt).ok else solution, "image_name": image_name}


# ------------------------------------------------------------------------------------------------
# Training records -> trajectories


def read_mat_training(path: str | Path, *, image_root: str | Path | None = None, task: str | None = None,
                      skip_bad_images: bool = False) -> list[StepSample] | tuple[list[StepSample], int]:
  """The released training samples as `StepSample`s of gold `Trajectory`s: one per record, in file order.

  Records are grouped by question and picture (the image name without `_proc`/`_ori`); the
  trajectory id is that picture's name. Turn order:
    search: a record's turn index is the number of gold turns already in its prompt. The
      trajectory's turns are those in the prompt of its answer record, then that answer; each
      turn's observation is the text after it in that prompt (the `<information>` block).
      Every other record's turn must have the same action and content as the turn at its index.
    coding: pre_problem, pre_code (when there is one), pre_answer, each record's "gt" as the
      turn. The code turn's observation image is the picture of the record after it (the clean
      `_ori` file) when that differs from the one before; observation text is what follows each
      turn in the answer record's "context" when that holds all earlier turns, else "".
  A `none` coding trajectory has no code turn, so its answer sample sees the first (`_proc`)
  picture, not the answer record's (`_ori`). For the records exactly as released (prompt
  text, per-record picture), use `read_mat_training_records`.

  Args:
    path, image_root, task: as `read_mat_training_records`.
    skip_bad_images: as there, but a record with a bad image leaves out its whole trajectory;
      the count is of all the records left out.

  Raises:
    As `read_mat_training_records`, and ValueError naming the records of a group that does not
    make one well-formed trajectory (no answer, two different turns for one index, a missing
    step, a turn without `<think>`).
  """
  path = Path(path)
  records, skipped = _load_training(path, image_root, task, skip_bad_images)
  groups: dict[tuple[str, str], list[MatTrainingRecord]] = {}
  for record in records:
    groups.setdefault(_group_key(record.question, record.image_name), []).append(record)
  # A trajectory with a record left out cannot be put together: leave it all out.
  broken = {key for _, key in skipped}
  left_out = [message for message, _ in skipped]
  for key in broken & groups.keys():
    left_out += [f"{r.where}: its trajectory lost a record" for r in groups.pop(key)]
  records = [r for r in records if _group_key(r.question, r.image_name) not in broken]
  samples_of: dict[int, StepSample] = {}
  names: dict[str, int] = {}
  for (_, picture), group in groups.items():
    names[picture] = names.get(picture, 0) + 1
    trajectory_id = picture if names[picture] == 1 else f"{picture}#{names[picture]}"
    build = _search_trajectory if group[0].task == "search" else _coding_trajectory
    trajectory, indices = build(trajectory_id, group)
    for record, index in zip(group, indices):
      samples_of[id(record)] = StepSample(trajectory, index)
  samples = [samples_of[id(r)] for r in records]
  if skip_bad_images:
    _report_skipped(path, left_out)
    return samples, len(left_out)
  return samples


def _picture(image_name: str) -> str:
  """`rotation90_3_proc.png` -> `rotation90_3`: the name the steps of one coding question share."""
  return _PICTURE_SUFFIX.sub("", str(PurePosixPath(image_name).with_suffix("")))


def _group_key(question: str, image_name: str) -> tuple[str, str]:
  return question, _picture(image_name)


def _wheres(group: list[MatTrainingRecord]) -> str:
  return "; ".join(r.where for r in group)


def _same_turn(a: str, b: str) -> bool:
  """Same action and content, whitespace aside (the reasoning may be worded differently)."""
  sa, sb = parse_step(a), parse_step(b)
  return sa.action == sb.action and " ".join(sa.content.split()) == " ".join(sb.content.split())


def _make_trajectory(trajectory_id: str, group: list[MatTrainingRecord], image: np.ndarray, steps: list[str],
                     observations: list[Observation]) -> Trajectory:
  last = parse_step(steps[-1])
  if last.ok and last.action != "answer":  # a malformed last turn is named by Trajectory itself
    raise ValueError(f"trajectory {trajectory_id!r} has no answer turn ({_wheres(group)})")
  try:
    return Trajectory(trajectory_id, group[0].task, group[0].question, image, tuple(steps), tuple(observations),
                      (last.content,), split="train")
  except ValueError as e:
    raise ValueError(f"{e} ({_wheres(group)})") from None


def _search_trajectory(trajectory_id: str, group: list[MatTrainingRecord]) -> tuple[Trajectory, list[int]]:
  chains = [_chain(_split_query(r.prompt)[1]) for r in group]
  indices = [len(turns) for turns, _ in chains]
  final = max(range(len(group)), key=lambda i: indices[i])
  turns, replies = chains[final]
  steps = turns + [group[final].gold_step]
  for record, index in zip(group, indices):
    if not _same_turn(record.gold_step, steps[index]):
      raise ValueError(f"{record.where}: gold turn {index} of trajectory {trajectory_id!r} is "
                       f"{record.gold_step!r:.80}, but {group[final].where} has {steps[index]!r:.80} there")
  observations = [Observation(text=t) for t in replies] + [NO_OBSERVATION]
  return _make_trajectory(trajectory_id, group, group[final].image, steps, observations), indices


def _coding_trajectory(trajectory_id: str, group: list[MatTrainingRecord]) -> tuple[Trajectory, list[int]]:
  has_code = any(r.step_type == "pre_code" for r in group)
  rank = {"pre_problem": 0, "pre_code": 1, "pre_answer": 2 if has_code else 1}
  indices = [rank[r.step_type] for r in group]
  by_index: dict[int, MatTrainingRecord] = {}
  for record, index in zip(group, indices):
    first = by_index.setdefault(index, record)
    if first is not record and not _same_turn(first.gold_step, record.gold_step):
      raise ValueError(f"trajectory {trajectory_id!r} has two different {record.step_type} turns "
                       f"({first.where}; {record.where})")
  missing = [t for t, i in rank.items() if (t != "pre_code" or has_code) and i not in by_index]
  if missing:
    raise ValueError(f"trajectory {trajectory_id!r} has no {' or '.join(missing)} record ({_wheres(group)})")
  ordered = [by_index[i] for i in range(len(by_index))]
  steps = [r.gold_step for r in ordered]
  turns, replies = _chain(ordered[-1].context)
  texts = replies if len(turns) == len(steps) - 1 else [""] * (len(steps) - 1)
  observations, current = [], ordered[0].image_path
  for k, record in enumerate(ordered[:-1]):
    after = ordered[k + 1]
    wrote = record.kind == "code" and after.image_path != current
    observations.append(Observation(text=texts[k], image=after.image if wrote else None))
    current = after.image_path if wrote else current
  observations.append(NO_OBSERVATION)
  return _make_trajectory(trajectory_id, group, ordered[0].image, steps, observations), indices


def unique_trajectories(samples: Iterable[StepSample]) -> list[Trajectory]:
  """The distinct trajectories of `samples`, in order of first appearance."""
  return list({id(s.trajectory): s.trajectory for s in samples}.values())

"""Preference-pair records: the jsonl layout, reading and writing it, and building pairs from samples.

One record per line, MMPR's field names (InternVL's DPO/MPO data):

  {"image": "a.png" | ["a.png", "b.png"]   (optional; relative to the jsonl's folder, or absolute),
   "question": str                          ("prompt" is read as an alias),
   "chosen": str, "rejected": str,
   "system_prompt": str                     (optional)}

Other keys ride along unchanged. Images go where the question holds `<image>` placeholders (one per
image, MMPR style), or before the question text when it holds none.

`read_pairs` returns records in canonical form: the prompt under "question", "image" as a list of
paths made absolute against the jsonl's folder (absent for text-only records). A line that is not a
JSON object, lacks a key or holds a wrong type raises `PairFormatError` naming the file and line.
Content problems (empty or identical responses, length, missing image files) are judged where the
records are tokenized, in `jaxlab.posttrain.pairs.PreferencePairSource`.

`build_pairs` makes MMPR's correctness-based pairs from a model's own samples: per prompt, answers
`verify` accepts are chosen candidates, the rest rejected candidates, and pairs are drawn from the two.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from jaxlab.files import atomic_open

log = logging.getLogger(__name__)

PROMPT_KEYS = ("question", "prompt")  # MMPR's name first; "prompt" is accepted on input.
RESPONSE_KEYS = ("chosen", "rejected")


class PairFormatError(ValueError):
  """A pair record that is not valid JSON or lacks a key / has a wrong type; the message names where."""


def canonical_record(record: Any, where: str, image_root: str | os.PathLike | None = None) -> dict[str, Any]:
  """`record` with its prompt under "question" and "image" as a list of paths (or no "image" key).

  Args:
    record: one pair record (a mapping).
    where: how to name it in errors, e.g. "pairs.jsonl line 3".
    image_root: folder that relative image paths are joined to; None leaves them as they are.

  Raises:
    PairFormatError: not a mapping, no prompt / chosen / rejected, a non-str field, or "prompt" and
      "question" both given and different.
  """
  if not isinstance(record, Mapping):
    raise PairFormatError(f"{where}: a pair record must be a JSON object, got {type(record).__name__}")
  out = dict(record)
  given = [k for k in PROMPT_KEYS if k in out]
  if not given:
    raise PairFormatError(f"{where}: missing key 'question' (or 'prompt'); keys are {sorted(out)}")
  prompts = [out.pop(k) for k in given]
  if len(prompts) == 2 and prompts[0] != prompts[1]:
    raise PairFormatError(f"{where}: 'question' and 'prompt' are both given and differ")
  out["question"] = prompts[0]
  for key in ("question",) + RESPONSE_KEYS:
    if key not in out:
      raise PairFormatError(f"{where}: missing key {key!r}; keys are {sorted(out)}")
    if not isinstance(out[key], str):
      raise PairFormatError(f"{where}: {key!r} must be a string, got {type(out[key]).__name__}")
  if "system_prompt" in out and not isinstance(out["system_prompt"], str):
    raise PairFormatError(f"{where}: 'system_prompt' must be a string, got {type(out['system_prompt']).__name__}")
  images = out.pop("image", None)
  if images is not None:
    images = [images] if isinstance(images, str) else images
    if not isinstance(images, list) or not all(isinstance(p, str) and p for p in images):
      raise PairFormatError(f"{where}: 'image' must be a path or a list of paths, got {record['image']!r}")
    if images:
      root = None if image_root is None else os.fspath(image_root)
      out["image"] = [p if root is None or os.path.isabs(p) else os.path.normpath(os.path.join(root, p))
                      for p in images]
  return out


def read_labelled_pairs(path: str | os.PathLike) -> list[tuple[str, dict[str, Any]]]:
  """[(where, canonical record)] of the jsonl file at `path`; where is "<path> line <n>" (1-based).

  Blank lines are skipped (they still count in line numbers).
  """
  path = os.fspath(path)
  root = os.path.dirname(os.path.abspath(path))
  labelled = []
  with open(path, encoding="utf-8") as f:
    for line_number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      where = f"{path} line {line_number}"
      try:
        value = json.loads(line)
      except json.JSONDecodeError as e:
        raise PairFormatError(f"{where}: not valid JSON: {e.msg} at column {e.colno}") from None
      labelled.append((where, canonical_record(value, where, root)))
  return labelled


def read_pairs(path: str | os.PathLike) -> list[dict[str, Any]]:
  """The canonical records of the jsonl file at `path` (see the module docstring).

  Raises:
    FileNotFoundError: no such file.
    PairFormatError: a bad line (its number named).
  """
  return [record for _, record in read_labelled_pairs(path)]


def write_pairs(path: str | os.PathLike, records: Iterable[Mapping[str, Any]], *, overwrite: bool = True) -> int:
  """Writes `records` as jsonl, atomically; returns how many were written.

  Records are checked first (`PairFormatError` names "record i") and written in canonical form, so
  "prompt" becomes "question". Image paths are written as given: a relative one is read back relative
  to the folder of `path`.
  """
  lines = []
  for i, record in enumerate(records):
    canonical = canonical_record(record, f"record {i}")
    lines.append(json.dumps(canonical, ensure_ascii=False, allow_nan=False) + "\n")
  with atomic_open(path, "w", overwrite=overwrite) as f:
    f.writelines(lines)
  return len(lines)


@dataclasses.dataclass
class PairBuildReport:
  """What `build_pairs` made of its prompts.

  Attributes:
    prompts: prompts seen.
    pairs: pairs made.
    prompts_with_pairs: prompts that gave at least one pair.
    all_correct: prompts whose distinct answers all passed `verify` (no rejected candidate).
    all_wrong: prompts whose distinct answers all failed it (no chosen candidate).
    no_answers: prompts without one non-empty answer.
    duplicate_answers: answers dropped as repeats of an earlier answer to the same prompt.
    empty_answers: answers dropped for being empty or whitespace.
  """

  prompts: int = 0
  pairs: int = 0
  prompts_with_pairs: int = 0
  all_correct: int = 0
  all_wrong: int = 0
  no_answers: int = 0
  duplicate_answers: int = 0
  empty_answers: int = 0


def build_pairs(
    prompts: Sequence[Mapping[str, Any]],
    samples_per_prompt: Sequence[Sequence[str]],
    verify: Callable[[Mapping[str, Any], str], bool],
    *,
    pairs_per_prompt: int = 1,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], PairBuildReport]:
  """MMPR-style preference pairs from N sampled answers per prompt.

  Per prompt: empty answers are dropped and repeats (equal after stripping whitespace) are merged,
  keeping the first; `verify(prompt, answer)` runs once per distinct answer. Correct answers are the
  chosen candidates, incorrect ones the rejected candidates (an answer without a clear final answer
  should fail `verify`, as MMPR counts it negative). Up to `pairs_per_prompt` distinct
  (chosen, rejected) combinations are drawn without replacement from the product of the two, by
  `np.random.default_rng((seed, prompt_index))`, so a prompt's pairs depend only on its own answers,
  its index and the seed. Prompts whose answers are all correct or all wrong give no pair and are
  counted in the report.

  Args:
    prompts: prompt records: "question" (or "prompt"), optional "image" and "system_prompt", any
      other keys; all are copied into each of the prompt's pairs.
    samples_per_prompt: the sampled answer strings of each prompt, aligned with `prompts`.
    verify: True when an answer is correct for the prompt record.
    pairs_per_prompt: most pairs per prompt, >= 1.
    seed: non-negative int.

  Returns:
    (records in the jsonl layout, ready for `write_pairs`; the report, also logged).

  Raises:
    ValueError: lengths differ, a bad pairs_per_prompt or seed, or a bad prompt record (named).
  """
  if len(prompts) != len(samples_per_prompt):
    raise ValueError(f"got {len(prompts)} prompts but answers for {len(samples_per_prompt)}")
  if isinstance(pairs_per_prompt, bool) or not isinstance(pairs_per_prompt, int) or pairs_per_prompt < 1:
    raise ValueError(f"pairs_per_prompt must be an int >= 1, got {pairs_per_prompt!r}")
  if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
    raise ValueError(f"seed must be a non-negative int, got {seed!r}")
  report = PairBuildReport(prompts=len(prompts))
  records = []
  for index, (prompt, answers) in enumerate(zip(prompts, samples_per_prompt)):
    base = _prompt_fields(prompt, f"prompt {index}")
    if isinstance(answers, str):
      raise ValueError(f"prompt {index}: answers must be a list of strings, got one string")
    distinct = _distinct_answers(answers, report, f"prompt {index}")
    if not distinct:
      report.no_answers += 1
      continue
    correct, wrong = [], []
    for answer in distinct:
      (correct if verify(prompt, answer) else wrong).append(answer)
    if not wrong:
      report.all_correct += 1
      continue
    if not correct:
      report.all_wrong += 1
      continue
    rng = np.random.default_rng((seed, index))
    num_pairs = min(pairs_per_prompt, len(correct) * len(wrong))
    for flat in rng.choice(len(correct) * len(wrong), size=num_pairs, replace=False):
      chosen, rejected = correct[flat // len(wrong)], wrong[flat % len(wrong)]
      records.append({**base, "chosen": chosen, "rejected": rejected})
    report.pairs += num_pairs
    report.prompts_with_pairs += 1
  log.info("build_pairs: %s", report)
  return records, report


def _prompt_fields(prompt: Any, where: str) -> dict[str, Any]:
  """The prompt record's fields in canonical form, checked like a pair record's."""
  if not isinstance(prompt, Mapping):
    raise ValueError(f"{where}: a prompt record must be a mapping, got {type(prompt).__name__}")
  if any(k in prompt for k in RESPONSE_KEYS):
    raise ValueError(f"{where}: a prompt record must not hold 'chosen' or 'rejected'")
  fields = canonical_record({**prompt, "chosen": "", "rejected": ""}, where)
  del fields["chosen"], fields["rejected"]
  return fields


def _distinct_answers(answers: Sequence[str], report: PairBuildReport, where: str) -> list[str]:
  seen, distinct = set(), []
  for answer in answers:
    if not isinstance(answer, str):
      raise ValueError(f"{where}: answers must be strings, got {type(answer).__name__}")
    key = answer.strip()
    if not key:
      report.empty_answers += 1
    elif key in seen:
      report.duplicate_answers += 1
    else:
      seen.add(key)
      distinct.append(answer)
  return distinct

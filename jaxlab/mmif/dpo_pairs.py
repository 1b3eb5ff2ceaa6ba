"""MM-IFDPO pairs: chosen = a response meeting >= 80 % of the constraints; rejected = an answer to a degraded prompt.

The four rejection variants of the paper (the rejected answer comes from a model that saw less):

  drop_third        ceil(n/3) of the n constraints removed from the prompt
  drop_two_thirds   ceil(2n/3) removed
  drop_all          every constraint removed (the instruction alone)
  drop_image        the full prompt, without the image

Which constraints go is drawn per item. Rounding up keeps at least one constraint removed, so a
rejected prompt never equals the chosen one. Both responses of a pair are trained against the full
prompt with the image: the degradation only shapes what the rejected answer says.

Pairs are written in `jaxlab.posttrain`'s pair layout (MMPR field names: "image", "question",
"chosen", "rejected"; "id", "variant" and "dropped" ride along), so `PreferencePairSource` reads them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from jaxlab.mmif.engine import IMAGE_MARK, InstructItem, keep_response, satisfaction
from jaxlab.mmif.records import test_prompt

VARIANTS: tuple[str, ...] = ("drop_third", "drop_two_thirds", "drop_all", "drop_image")
_DROP_FRACTION = {"drop_third": 1 / 3, "drop_two_thirds": 2 / 3, "drop_all": 1.0}


@dataclasses.dataclass(frozen=True)
class DegradedPrompt:
  """What the rejecting model is asked: the prompt text, whether it sees the image, what was removed."""

  item_id: str
  prompt: str
  with_image: bool
  dropped: tuple[str, ...]


def num_dropped(num_constraints: int, variant: str) -> int:
  if variant not in VARIANTS:
    raise ValueError(f"unknown rejection variant {variant!r}; known: {', '.join(VARIANTS)}")
  if variant == "drop_image":
    return 0
  return min(num_constraints, math.ceil(_DROP_FRACTION[variant] * num_constraints - 1e-9))


def degrade(item: InstructItem, variant: str, rng: np.random.Generator) -> DegradedPrompt:
  """The degraded prompt of `item` under `variant` (module docstring)."""
  k = num_dropped(len(item.constraints), variant)
  if variant != "drop_image" and k == 0:
    raise ValueError(f"item {item.id}: no constraint to drop (variant {variant})")
  drop = set(rng.choice(len(item.constraints), size=k, replace=False).tolist()) if k else set()
  kept = [c for i, c in enumerate(item.constraints) if i not in drop]
  return DegradedPrompt(item.id, test_prompt(item.instruction, kept), variant != "drop_image",
                        tuple(item.constraints[i].key for i in sorted(drop)))


@dataclasses.dataclass
class PairReport:
  """Items turned into pairs, and those left out by reason."""

  pairs: int = 0
  chosen_below_threshold: int = 0
  identical: int = 0
  rejected_meets_all: int = 0


def make_pairs(items: Sequence[InstructItem], degraded: Sequence[DegradedPrompt], rejected: Sequence[str],
               variant: str, *, threshold: float = 0.8,
               skip_rejected_meeting_all: bool = False) -> tuple[list[dict], PairReport]:
  """Pair records (module docstring) from answered items and the rejecting model's answers.

  An item is left out when its response meets less than `threshold` of its (rule-checkable)
  constraints or when the rejected answer equals the chosen one. A rejected answer that meets every
  rule constraint is counted (`rejected_meets_all`) and kept, as in the paper, unless
  `skip_rejected_meeting_all`.
  """
  if not len(items) == len(degraded) == len(rejected):
    raise ValueError(f"items ({len(items)}), degraded prompts ({len(degraded)}) and rejected answers "
                     f"({len(rejected)}) must have the same length")
  report = PairReport()
  records = []
  for item, prompt, answer in zip(items, degraded, rejected):
    if item.id != prompt.item_id:
      raise ValueError(f"degraded prompt of item {prompt.item_id} is paired with item {item.id}")
    if item.response is None or not keep_response(satisfaction(item.response, item.constraints), threshold):
      report.chosen_below_threshold += 1
      continue
    if answer.strip() == item.response.strip():
      report.identical += 1
      continue
    if satisfaction(answer, item.constraints) == 1.0:
      report.rejected_meets_all += 1
      if skip_rejected_meeting_all:
        continue
    records.append({"id": item.id, "image": item.image, "question": IMAGE_MARK + item.prompt,
                    "chosen": item.response, "rejected": answer, "variant": variant, "dropped": list(prompt.dropped)})
    report.pairs += 1
  return records, report

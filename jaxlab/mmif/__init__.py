"""MM-IFEngine: multimodal instruction following with constraints (data engine, verifiers, judges, MM-IFEval).

- `taxonomy`: the 6 classes and 32 constraint sub-types, each with its evaluation method.
- `records`: constraints and items in MM-IFEval's JSON layout; the test prompt.
- `text`, `verifiers`: the text conventions (paragraphs, sentences offline by pysbd, words) and the
  rule verifiers under their released names, checked and ANDed from `verify_funcs`.
- `judges`, `judge_backends`: the direct, compare and perception judges' prompts and strict parsers;
  an OpenAI-compatible chat client and a jaxlab-VLM backend.
- `tasks`, `constraint_writers`, `compatibility`, `engine`: the pipeline: image filter, tasks of five
  types, constraints written by templates (or an LLM hook), contradictions rejected, responses kept
  at >= 80 % satisfied, the MM-IFInstruct jsonl.
- `dpo_pairs`: MM-IFDPO pairs under the four rejection variants.
- `mmifeval`, `scoring`, `score`: the MM-IFEval reader, scorer and command
  (`python -m jaxlab.mmif.score`).
- `synthetic`, `sft_source`, `respond`: the embedded shape-scene set with its teacher, SFT records,
  and batched answers from a jaxlab VLM.
"""

from jaxlab.mmif.compatibility import conflicts
from jaxlab.mmif.constraint_writers import RULE_WRITERS, write_constraint
from jaxlab.mmif.dpo_pairs import VARIANTS as REJECTION_VARIANTS
from jaxlab.mmif.dpo_pairs import DegradedPrompt, degrade, make_pairs
from jaxlab.mmif.engine import (InstructItem, integrate_constraints, keep_response, read_instruct, satisfaction,
                                write_instruct)
from jaxlab.mmif.judge_backends import OpenAIChatJudge, VlmJudge
from jaxlab.mmif.judges import (JudgeParseError, JudgeUnavailable, Verdict, parse_compare_verdict, parse_direct_scores,
                                parse_perception_verdict, run_compare_judge, run_direct_judge, run_perception_judge)
from jaxlab.mmif.mmifeval import MMIFEvalInputError, attach_predictions, read_mmifeval, read_predictions
from jaxlab.mmif.records import Constraint, ConstraintError, test_prompt
from jaxlab.mmif.scoring import ScoreReport, average, score_items
from jaxlab.mmif.synthetic import Teacher, make_items
from jaxlab.mmif.tasks import TASK_TYPES, ImageRecord, Task, filter_images, generate_tasks
from jaxlab.mmif.taxonomy import CLASSES, JUDGE_METHODS, SUB_TYPES, SubType, sub_type
from jaxlab.mmif.text import split_paragraphs, split_sentences, split_words
from jaxlab.mmif.verifiers import VERIFIERS, check_rule_constraint, validate_verify_funcs, verify

__all__ = [
    "attach_predictions", "average", "check_rule_constraint", "CLASSES", "conflicts", "Constraint", "ConstraintError",
    "degrade", "DegradedPrompt", "filter_images", "generate_tasks", "ImageRecord", "InstructItem",
    "integrate_constraints", "JUDGE_METHODS", "JudgeParseError", "JudgeUnavailable", "keep_response", "make_items",
    "make_pairs", "MMIFEvalInputError", "OpenAIChatJudge", "parse_compare_verdict", "parse_direct_scores",
    "parse_perception_verdict", "read_instruct", "read_mmifeval", "read_predictions", "REJECTION_VARIANTS",
    "RULE_WRITERS", "run_compare_judge", "run_direct_judge", "run_perception_judge", "satisfaction", "score_items",
    "ScoreReport", "split_paragraphs", "split_sentences", "split_words", "SUB_TYPES", "sub_type", "SubType", "Task",
    "TASK_TYPES", "Teacher", "test_prompt", "validate_verify_funcs", "Verdict", "VERIFIERS", "verify", "VlmJudge",
    "write_constraint", "write_instruct",
]

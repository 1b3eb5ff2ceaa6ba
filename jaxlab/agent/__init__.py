"""Agentic reasoning with tools (Visual-ARFT): the tagged step format and its rewards.

- `tags`: parse and validate one model turn (`<think>` then exactly one action: `<search>`,
  `<problem>`, `<code>` or `<answer>`), format the environment's `<information>` reply.
- `rewards`: the format reward, the answer's token F1 (SQuAD normalization), the search
  query's embedding similarity, the code-step constant and the problem-label reward.
- `mat_score`: the MAT benchmark's F1 and EM over a predictions jsonl (also a command).
- `search`: the search tool: a local BM25 index or an HTTP search API behind one interface.
- `sandbox`: the code tool: model-written Python run on one image in a fenced separate process.
"""

from jaxlab.agent.rewards import (
    answer_f1,
    format_reward,
    normalize_answer,
    problem_reward,
    search_reward,
    step_reward,
)
from jaxlab.agent.tags import ACTIONS, PROBLEM_LABELS, Step, format_information, parse_problem_labels, parse_step

__all__ = [
    "ACTIONS",
    "PROBLEM_LABELS",
    "Step",
    "answer_f1",
    "format_information",
    "format_reward",
    "normalize_answer",
    "parse_problem_labels",
    "parse_step",
    "problem_reward",
    "search_reward",
    "step_reward",
]

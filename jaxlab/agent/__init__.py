"""Agentic reasoning with tools (Visual-ARFT): the step format, rewards, tools, data, the live loop.

- `tags`: parse and validate one model turn (`<think>` then exactly one action: `<search>`,
  `<problem>`, `<code>` or `<answer>`), format the environment's `<information>` reply.
- `rewards`: the format reward, the answer's token F1 (SQuAD normalization), the search
  query's embedding similarity, the code-step constant and the problem-label reward.
- `records`: trajectories (gold turns and observations), single-step samples, eval items.
- `coding_data`, `search_data`: the embedded MAT-Coding-like and MAT-Search-like sets;
  `mat_data`: readers for the released MAT files; `datasets`: what one run reads.
- `vocab`, `prompt`, `step_source`: transcripts as tokens, the chat prompt of one turn, and
  step samples as fixed-shape records for SFT and GRPO (`training`).
- `search`, `sandbox`, `tools`: the search tool (BM25 or HTTP), the code sandbox, and the
  environment's reply to a turn.
- `loop`: the live multi-round loop batched over questions (`VlmStepPolicy` for jaxlab's VLM).
- `mat_score`: the MAT benchmark's F1 and EM over a predictions jsonl (also a command).
"""

from jaxlab.agent.loop import MAX_ROUNDS, StepRequest, Transcript, VlmStepPolicy, agent_metrics, run_agent
from jaxlab.agent.prompt import render_prompt
from jaxlab.agent.records import EvalItem, Observation, StepSample, Trajectory, split_into_steps
from jaxlab.agent.rewards import (
    answer_f1,
    format_reward,
    normalize_answer,
    problem_reward,
    search_reward,
    step_reward,
)
from jaxlab.agent.step_source import AgentStepSource
from jaxlab.agent.tags import ACTIONS, PROBLEM_LABELS, Step, format_information, parse_problem_labels, parse_step
from jaxlab.agent.tools import AgentTools
from jaxlab.agent.vocab import AgentVocab

__all__ = [
    "ACTIONS",
    "AgentStepSource",
    "AgentTools",
    "AgentVocab",
    "EvalItem",
    "MAX_ROUNDS",
    "Observation",
    "PROBLEM_LABELS",
    "Step",
    "StepRequest",
    "StepSample",
    "Trajectory",
    "Transcript",
    "VlmStepPolicy",
    "agent_metrics",
    "answer_f1",
    "format_information",
    "format_reward",
    "normalize_answer",
    "parse_problem_labels",
    "parse_step",
    "problem_reward",
    "render_prompt",
    "run_agent",
    "search_reward",
    "split_into_steps",
    "step_reward",
]

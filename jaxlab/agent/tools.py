"""The environment's side of one turn: run the turn's tool and say what goes back into the chain.

`AgentTools.respond(task, step, current_image)` never raises on model output. A search runs the
search backend (`jaxlab.agent.search`), code runs in the sandbox (`jaxlab.agent.sandbox`) on the
current view; a failure of either, an action the task has no tool for, or a malformed turn comes
back as an `<information> error: … </information>` observation and a short error kind, which the
loop counts.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxlab.agent.records import NO_OBSERVATION, Observation
from jaxlab.agent.sandbox import SandboxLimits, run_image_code
from jaxlab.agent.search import SearchBackend, search_step
from jaxlab.agent.tags import Step

TASK_ACTIONS = {"coding": ("problem", "code", "answer"), "search": ("search", "answer")}


def error_observation(message: str) -> Observation:
  return Observation(text=f"<information> error: {' '.join(message.split())[:300]} </information>")


@dataclasses.dataclass(frozen=True)
class ToolReply:
  """`observation` goes into the chain; `error` is "" or one of "format", "action", "search", "code"."""

  observation: Observation
  error: str = ""
  detail: str = ""


@dataclasses.dataclass
class AgentTools:
  """The tools of both tasks: `search` (None: searching is an error) and the code sandbox's limits."""

  search: SearchBackend | None = None
  sandbox_limits: SandboxLimits = dataclasses.field(default_factory=SandboxLimits)

  def respond(self, task: str, step: Step, current_image: np.ndarray) -> ToolReply:
    """The observation after a non-answer turn `step` of `task` (module docstring)."""
    if not step.ok:
      return ToolReply(error_observation(f"malformed turn: {step.error}"), "format", step.error)
    if step.action not in TASK_ACTIONS[task]:
      why = f"the {task} task has no <{step.action}> tool; use one of {TASK_ACTIONS[task]}"
      return ToolReply(error_observation(why), "action", why)
    if step.action == "problem":
      return ToolReply(NO_OBSERVATION)
    if step.action == "search":
      if self.search is None:
        return ToolReply(error_observation("no search backend is configured"), "search", "no backend")
      text, error = search_step(self.search, step.content)
      return ToolReply(Observation(text=text), "search" if error else "", error)
    result = run_image_code(step.content, current_image, self.sandbox_limits)
    if not result.ok:
      return ToolReply(error_observation(f"the code failed: {result.error}"), "code", result.error)
    return ToolReply(Observation(image=result.image))

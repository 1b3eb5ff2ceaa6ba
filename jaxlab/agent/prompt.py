"""The chat prompt of one agent turn: system prompt, the images, `<query>`, and the chain so far.

Each round the whole chain is re-sent as one user message (Visual-ARFT's inference loop):

    <|im_start|>system\\n{system prompt}<|im_end|>\\n
    <|im_start|>user\\n<img>…</img>[<img>…</img>]\\n<query> {question} </query>
    {turn 1}\\n{observation 1}\\n{turn 2}…<|im_end|>\\n<|im_start|>assistant\\n

Images: a search prompt holds the input image; a coding prompt holds two, the input image and
the current view (the newest image a `<code>` turn wrote, else the input again). The code tool's
reply in the chain is a short `<information>` line saying whether the second image is fresh
output or what went wrong. Visual-ARFT appends each output image to the chain instead; a fixed
number of images per prompt keeps every prompt of a batch the same shape.

`mode="direct"` is the no-tools baseline: the question alone, answered in one turn.
"""

from __future__ import annotations

from collections.abc import Sequence

from jaxlab.agent.records import Observation
from jaxlab.vlm.chat_template import IM_END, IM_START
from jaxlab.vlm.image_tokens import IMG_CONTEXT, IMG_END, IMG_START

SYSTEM_PROMPTS = {
    "coding": ("Think in <think> , then name the image problems in <problem> , fix the image with Python in "
               "<code> , and answer in <answer> ."),
    "search": "Think in <think> , then search in <search> , or answer in <answer> .",
    "direct": "Think in <think> , then answer in <answer> .",
}
CODE_RAN = "<information> the code ran ; the second image is its output </information>"
MODES = ("tools", "direct")


def images_per_prompt(task: str) -> int:
  if task not in ("coding", "search"):
    raise ValueError(f"task must be 'coding' or 'search', got {task!r}")
  return 2 if task == "coding" else 1


def observation_text(observation: Observation) -> str:
  """The observation as chain text: its own text, or CODE_RAN for a code output image."""
  if observation.text:
    return observation.text
  return CODE_RAN if observation.image is not None else ""


def image_block(tokens_per_tile: int) -> str:
  return IMG_START + IMG_CONTEXT * tokens_per_tile + IMG_END


def render_prompt(task: str, question: str, steps: Sequence[str] = (), observations: Sequence[Observation] = (), *,
                  tokens_per_tile: int, mode: str = "tools") -> str:
  """The prompt text of the next turn (module docstring); `steps` and `observations` pair up."""
  if mode not in MODES:
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
  if len(steps) != len(observations):
    raise ValueError(f"{len(steps)} turns but {len(observations)} observations")
  if mode == "direct" and steps:
    raise ValueError("a direct (no tools) prompt has no chain")
  images = image_block(tokens_per_tile) * images_per_prompt(task)
  chain = ""
  for step, observation in zip(steps, observations):
    chain += "\n" + step
    text = observation_text(observation)
    if text:
      chain += "\n" + text
  system = SYSTEM_PROMPTS["direct" if mode == "direct" else task]
  user = f"{images}\n<query> {question} </query>{chain}"
  return f"{IM_START}system\n{system}{IM_END}\n{IM_START}user\n{user}{IM_END}\n{IM_START}assistant\n"

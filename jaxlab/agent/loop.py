"""The live multi-round agent loop (Visual-ARFT's evaluation), batched over questions.

Each round, every unfinished question's chain is rendered into one prompt (`prompt.render_prompt`)
and all of them go to the policy in one call; each reply is parsed (`tags.parse_step`): an
`<answer>` ends that question, any other turn is appended with the tool's observation
(`tools.AgentTools`) and the question goes to the next round. After `max_rounds` rounds (5, the
spec's) a question without an answer is scored as unanswered.

The policy is any `(requests) -> replies` callable, so the same loop drives jaxlab's VLM
(`VlmStepPolicy`, one cached `generate` call per round and chunk) and scripted policies in tests.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from jaxlab.agent import mat_score
from jaxlab.agent.prompt import images_per_prompt, render_prompt
from jaxlab.agent.records import EvalItem, Observation
from jaxlab.agent.step_source import tile
from jaxlab.agent.tags import parse_step
from jaxlab.agent.tools import AgentTools
from jaxlab.agent.vocab import AgentVocab

log = logging.getLogger(__name__)

MAX_ROUNDS = 5


@dataclasses.dataclass(frozen=True)
class StepRequest:
  """What the policy sees for one question: the chain so far and the prompt's images (uint8)."""

  task: str
  question: str
  steps: tuple[str, ...]
  observations: tuple[Observation, ...]
  images: tuple[np.ndarray, ...]
  mode: str = "tools"


StepPolicy = Callable[[Sequence[StepRequest]], Sequence[str | bytes]]


@dataclasses.dataclass
class Transcript:
  """One question's run: the turns, what came back, the answer (None: none given) and the errors."""

  item: EvalItem
  steps: list[str] = dataclasses.field(default_factory=list)
  observations: list[Observation] = dataclasses.field(default_factory=list)
  answer: str | None = None
  errors: list[str] = dataclasses.field(default_factory=list)
  current_image: np.ndarray | None = None

  @property
  def done(self) -> bool:
    return self.answer is not None

  def record(self) -> dict:
    """The MAT predictions-jsonl record (`mat_score`), with the transcript for reading."""
    return {"id": self.item.id, "prediction": self.answer, "answers": list(self.item.answers),
            "split": self.item.split, "rounds": len(self.steps), "errors": list(self.errors),
            "steps": list(self.steps), "observations": [o.text for o in self.observations]}


def _reply_text(reply: str | bytes) -> str:
  return reply.decode("utf-8", errors="replace") if isinstance(reply, bytes) else str(reply)


def run_agent(items: Sequence[EvalItem], policy: StepPolicy, tools: AgentTools, *, max_rounds: int = MAX_ROUNDS,
              mode: str = "tools") -> list[Transcript]:
  """Solves `items` live (module docstring); mode "direct" allows one round and no tools."""
  if max_rounds < 1:
    raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
  rounds = 1 if mode == "direct" else max_rounds
  transcripts = [Transcript(item, current_image=np.asarray(item.image)) for item in items]
  for _ in range(rounds):
    active = [t for t in transcripts if not t.done]
    if not active:
      break
    requests = [StepRequest(t.item.task, t.item.question, tuple(t.steps), tuple(t.observations),
                            _prompt_images(t), mode) for t in active]
    replies = policy(requests)
    if len(replies) != len(active):
      raise ValueError(f"the policy returned {len(replies)} replies for {len(active)} requests")
    for transcript, reply in zip(active, replies):
      step = parse_step(reply)
      transcript.steps.append(_reply_text(reply))
      if step.ok and step.action == "answer":
        transcript.answer = step.content
        transcript.observations.append(Observation())
        continue
      if mode == "direct":  # No tools: anything but an answer is a wasted (and final) turn.
        transcript.observations.append(Observation())
        transcript.errors.append("format" if not step.ok else "action")
        continue
      response = tools.respond(transcript.item.task, step, transcript.current_image)
      if response.observation.image is not None:
        transcript.current_image = response.observation.image
      transcript.observations.append(response.observation)
      if response.error:
        transcript.errors.append(response.error)
  return transcripts


def _prompt_images(transcript: Transcript) -> tuple[np.ndarray, ...]:
  if images_per_prompt(transcript.item.task) == 1:
    return (np.asarray(transcript.item.image),)
  return (np.asarray(transcript.item.image), transcript.current_image)


def agent_metrics(transcripts: Sequence[Transcript]) -> dict:
  """MAT F1 / EM per split (`mat_score.score_records`), and the loop's counts: rounds, errors by
  kind, and questions left without an answer."""
  report = mat_score.score_records(t.record() for t in transcripts)
  errors = Counter(e for t in transcripts for e in t.errors)
  report["loop"] = {"questions": len(transcripts), "mean_rounds": float(np.mean([len(t.steps) for t in transcripts])),
                    "no_answer": sum(not t.done for t in transcripts), "errors": dict(sorted(errors.items())),
                    "questions_with_errors": sum(bool(t.errors) for t in transcripts)}
  return report


class VlmStepPolicy:
  """A jaxlab `InternVLModel` as the loop's policy: greedy (or sampled) cached decoding of every
  request in chunks of `batch_size` left-padded prompts."""

  def __init__(self, model, params, vocab: AgentVocab, *, tile_size: int, tokens_per_tile: int, max_new_tokens: int,
               batch_size: int = 32, max_prompt_length: int | None = None, generate_kwargs: dict | None = None):
    self.model, self.params, self.vocab = model, params, vocab
    self.tile_size, self.tokens_per_tile = int(tile_size), int(tokens_per_tile)
    self.max_new_tokens, self.batch_size = int(max_new_tokens), int(batch_size)
    self.max_prompt_length = max_prompt_length
    self.generate_kwargs = dict(generate_kwargs or {})
    self.too_long = 0

  def __call__(self, requests: Sequence[StepRequest]) -> list[str]:
    from jaxlab.vlm import generate as vlm_generate  # The loop itself needs no model.

    replies: list[str] = []
    for start in range(0, len(requests), self.batch_size):
      chunk = list(requests[start:start + self.batch_size])
      prompts = [self.vocab.encode(render_prompt(r.task, r.question, r.steps, r.observations,
                                                 tokens_per_tile=self.tokens_per_tile, mode=r.mode)) for r in chunk]
      # A chain past the model's context is cut from the front of the chain's text (never the images).
      limit = self.max_prompt_length or max(len(p) for p in prompts)
      prompts = [self._fit(p, limit) for p in prompts]
      width = -(-max(len(p) for p in prompts) // 64) * 64  # Widths in steps of 64: few compiled shapes.
      rows = len(prompts)
      padded = self.batch_size  # A short last chunk repeats its last row: one compiled batch size.
      ids = np.full((padded, width), self.vocab.pad_id, np.int32)
      mask = np.zeros((padded, width), bool)
      for i in range(padded):
        p = prompts[min(i, rows - 1)]
        ids[i, width - len(p):] = p
        mask[i, width - len(p):] = True
      pixels = np.stack([tile(image, self.tile_size) for i in range(padded)
                         for image in chunk[min(i, rows - 1)].images])
      out = np.asarray(vlm_generate(self.model, self.params, jnp.asarray(ids), jnp.asarray(pixels), jnp.asarray(mask),
                                    max_new_tokens=self.max_new_tokens, eos_id=self.vocab.im_end_id,
                                    pad_id=self.vocab.pad_id, **self.generate_kwargs))
      replies.extend(self.vocab.decode_response(row) for row in out[:rows])
    return replies

  def _fit(self, prompt: list[int], limit: int) -> list[int]:
    if len(prompt) <= limit:
      return prompt
    self.too_long += 1
    images_end = max(i for i, t in enumerate(prompt) if t == self.vocab.image_token_id) + 2
    keep_tail = limit - images_end
    if keep_tail <= 8:
      raise ValueError(f"max_prompt_length={limit} leaves no room for the chain after the images")
    return prompt[:images_end] + prompt[len(prompt) - keep_tail:]

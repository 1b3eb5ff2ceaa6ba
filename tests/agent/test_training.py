"""Visual-ARFT's training pieces on a tiny VLM: GRPO learns through the agent's step records, the step
reward scores gold and broken turns, and the VLM drives the live loop."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlab.agent.loop import VlmStepPolicy, run_agent
from jaxlab.agent.prompt import render_prompt
from jaxlab.agent.records import NO_OBSERVATION, Observation, Trajectory, split_into_steps
from jaxlab.agent.search import BM25Index
from jaxlab.agent.step_source import AgentStepSource
from jaxlab.agent.tools import AgentTools
from jaxlab.agent.training import StepRewardFn, grpo_prompt_batch
from jaxlab.agent.vocab import AgentVocab
from jaxlab.models.qwen2 import Qwen2Config
from jaxlab.posttrain import GrpoSettings, ReferencePolicy, make_grpo_step, vlm_logits_fn, vlm_sampler
from jaxlab.train import TrainState
from jaxlab.vlm.config import InternVLConfig
from jaxlab.vlm.model import InternVLModel
from jaxlab.vlm.projector import ProjectorConfig
from jaxlab.vlm.vision import InternVisionConfig
from launch.tasks.common import stack_examples

TILE = 28


def _trajectory(i):
  image = np.full((TILE, TILE, 3), 40 * i, np.uint8)
  info = f"<information> 1. Content: City{i} lies on the river Tolka{i}. </information>"
  steps = (f"<think>Find city {i}.</think><search>emblem number {i}</search>",
           f"<think>Found it.</think><answer>Tolka{i}</answer>")
  return Trajectory(f"t{i}", "search", f"Which river for {i}?", image, steps, (Observation(text=info), NO_OBSERVATION),
                    (f"Tolka{i}",))


@functools.cache
def _setup():
  trajectories = [_trajectory(i) for i in range(4)]
  samples = split_into_steps(trajectories)
  texts = [render_prompt("search", s.trajectory.question, s.previous, s.previous_observations, tokens_per_tile=1)
           + s.solution + "<|im_end|>" for s in samples]
  vocab = AgentVocab.from_texts(texts)
  source = AgentStepSource(samples, vocab, tile_size=TILE, tokens_per_tile=1, max_prompt_length=96, max_length=128)
  config = InternVLConfig(
      vision=InternVisionConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                attention_bias=True, image_size=(TILE, TILE), patch_size=(14, 14)),
      projector=ProjectorConfig(16, 32, downsample_ratio=0.5),
      text=Qwen2Config(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256),
      image_token_id=vocab.image_token_id, image_seq_length=1)
  model = InternVLModel(config)
  record = source[0]
  params = model.init(jax.random.key(0), jnp.asarray(record["input_ids"][None]),
                      jnp.asarray(record["pixels"]))["params"]
  return trajectories, vocab, source, model, params


def test_step_reward_scores_gold_turns_two_and_counts_broken_ones():
  _, vocab, source, _, _ = _setup()
  reward_fn = StepRewardFn(source, group_size=2)
  rows = []
  for index in (0, 1):
    gold = vocab.encode(source.solution(index) + "<|im_end|>")
    rows += [gold, vocab.encode("<think>x</think>")]
  width = max(map(len, rows))
  completions = np.asarray([r + [vocab.pad_id] * (width - len(r)) for r in rows])
  rewards = reward_fn({"sample_index": np.asarray([0, 1])}, completions)
  np.testing.assert_allclose(rewards, [2.0, 0.0, 2.0, 0.0])
  assert reward_fn.counts == {"turns": 4, "bad_format": 2}


def test_grpo_on_agent_records_raises_a_toy_reward():
  """GRPO through the agent's prompt records and the VLM sampler, rewarded for emitting `<answer>`."""
  _, vocab, source, model, params = _setup()
  target = vocab.ids["<answer>"]
  reward = lambda prompts, completions: (completions == target).sum(axis=1).astype(np.float32)
  logits_fn = vlm_logits_fn(model)
  sampler = vlm_sampler(model, group_size=4, max_new_tokens=4, eos_id=vocab.im_end_id, pad_id=vocab.pad_id)
  optimizer = optax.adam(3e-2)
  step = make_grpo_step(logits_fn, sampler, reward, ReferencePolicy(logits_fn, params), optimizer,
                        eos_id=vocab.im_end_id, settings=GrpoSettings(group_size=4))
  state = TrainState.create(jax.tree.map(jnp.copy, params), optimizer)
  prompts = jax.tree.map(jnp.asarray, grpo_prompt_batch(stack_examples([source[i] for i in range(4)])))
  history = []
  for _ in range(12):
    state, metrics = step(state, prompts, jax.random.key(1))
    history.append(float(metrics["reward"]))
  assert np.mean(history[-3:]) > np.mean(history[:3]) + 0.5, history


def test_vlm_policy_drives_the_loop_and_cuts_long_chains_from_the_front():
  trajectories, vocab, _, model, params = _setup()
  policy = VlmStepPolicy(model, params, vocab, tile_size=TILE, tokens_per_tile=1, max_new_tokens=6, batch_size=4)
  items = [t.item for t in trajectories[:3]]  # A short chunk: padded to the batch size.
  transcripts = run_agent(items, policy, AgentTools(search=BM25Index(["City0 lies on the river Tolka0."])),
                          max_rounds=2)
  assert all(len(t.steps) == 2 and isinstance(t.steps[0], str) for t in transcripts)
  assert all(len(vocab.encode(t.steps[0])) <= 6 for t in transcripts)
  short = VlmStepPolicy(model, params, vocab, tile_size=TILE, tokens_per_tile=1, max_new_tokens=2, batch_size=4,
                        max_prompt_length=40)
  long_chain = ("<think>a</think><search>b</search>",) * 6
  from jaxlab.agent.loop import StepRequest
  request = StepRequest("search", "Which river for 1?", long_chain, (Observation(text="Tolka1 " * 5),) * 6,
                        (trajectories[0].image,))
  assert len(short([request])) == 1 and short.too_long == 1

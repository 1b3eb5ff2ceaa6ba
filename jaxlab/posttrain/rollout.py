"""GRPO's rollouts: G completions per prompt from jaxlab's cached generation, as one sequence batch.

A prompt batch holds "input_ids" [B, P] (left padded), optional "attention_mask" [B, P] and,
for a VLM, "pixels" [B, K, H, W, 3]. Each prompt is repeated G times (rows b*G .. b*G+G-1)
and continued by sampling (temperature, top-p). The rollout is the sequence batch the losses
read, N = B * G rows of T = P + L tokens:

  input_ids       [N, T]   prompt, then the completion (pad after its EOS)
  attention_mask  [N, T]   the prompt's mask, then ones
  response_mask   [N, T]   completion tokens up to and including the first EOS
  pixels          [N * K, H, W, 3] (VLM)
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxlab.models.qwen2 import generate as lm_generate
from jaxlab.posttrain.logprobs import mask_after_eos
from jaxlab.vlm import generate as vlm_generate

# sample_fn(params, prompt_batch, key) -> completions [B * G, L]
SampleFn = Callable[[Any, Mapping[str, jax.Array], jax.Array], jax.Array]


def repeat_prompts(prompt_batch: Mapping[str, jax.Array], group_size: int) -> dict[str, jax.Array]:
  """Each prompt (and its images) `group_size` times in a row, images flattened to [N * K, H, W, 3]."""
  out = {k: jnp.repeat(v, group_size, axis=0) for k, v in prompt_batch.items()}
  if "pixels" in out:
    out["pixels"] = out["pixels"].reshape(-1, *out["pixels"].shape[2:])
  return out


def vlm_sampler(model, *, group_size: int, max_new_tokens: int, eos_id: int | Sequence[int], pad_id: int,
                temperature: float = 1.0, top_p: float = 1.0) -> SampleFn:
  """G sampled completions per prompt of an `InternVLModel`, with the KV cache."""

  def sample(params, prompt_batch, key):
    rows = repeat_prompts(prompt_batch, group_size)
    return vlm_generate(model, params, rows["input_ids"], rows.get("pixels"), rows.get("attention_mask"),
                        max_new_tokens=max_new_tokens, method="sample", temperature=temperature, top_p=top_p,
                        eos_id=eos_id, pad_id=pad_id, key=key)

  return sample


def lm_sampler(model, *, group_size: int, max_new_tokens: int, eos_id: int | Sequence[int], pad_id: int,
               temperature: float = 1.0, top_p: float = 1.0) -> SampleFn:
  """G sampled completions per prompt of a `Qwen2LM`, with the KV cache."""

  def sample(params, prompt_batch, key):
    rows = repeat_prompts(prompt_batch, group_size)
    return lm_generate(model, params, rows["input_ids"], rows.get("attention_mask"), max_new_tokens=max_new_tokens,
                       method="sample", temperature=temperature, top_p=top_p, eos_id=eos_id, pad_id=pad_id, key=key)

  return sample


def rollout_batch(prompt_batch: Mapping[str, jax.Array], completions_nl: jax.Array, *, group_size: int,
                  eos_id: int) -> dict[str, jax.Array]:
  """The sequence batch (module docstring) of prompts and their sampled completions."""
  rows = repeat_prompts(prompt_batch, group_size)
  prompt_ids = rows["input_ids"]
  n, p = prompt_ids.shape
  if completions_nl.shape[0] != n:
    raise ValueError(f"{completions_nl.shape[0]} completions for {n // group_size} prompts x {group_size}")
  length = completions_nl.shape[1]
  prompt_mask = rows.get("attention_mask", jnp.ones((n, p), bool)).astype(bool)
  ids = jnp.concatenate([prompt_ids, completions_nl.astype(prompt_ids.dtype)], axis=1)
  completion_slots = jnp.concatenate([jnp.zeros((n, p), bool), jnp.ones((n, length), bool)], axis=1)
  out = {"input_ids": ids, "attention_mask": jnp.concatenate([prompt_mask, jnp.ones((n, length), bool)], axis=1),
         "response_mask": mask_after_eos(completion_slots, ids, eos_id)}
  if "pixels" in rows:
    out["pixels"] = rows["pixels"]
  return out

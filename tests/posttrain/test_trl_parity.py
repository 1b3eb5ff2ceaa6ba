"""Parity of jaxlab's post-training losses with TRL's trainers (torch on CPU).

A tiny random transformers `Qwen2ForCausalLM` policy and a noised copy of it as the reference are
saved and loaded into jaxlab's `Qwen2LM`. Both sides score the same prompt + response rows
(right-padded preference pairs; left-padded GRPO prompts with tokens after the first EOS), and
TRL's own code computes its side:

  log-probs     the fused LM head TRL's trainers patch in (`add_fused_lm_head`), and
                `selective_log_softmax` on ordinary logits
  DPO (sigmoid), BCO-pair, the generation term (TRL's "sft" loss type, which replaced
  `rpo_alpha`) and MPO (`loss_weights=[0.8, 0.2, 1.0]`): `DPOTrainer._compute_loss`
  GRPO          `GRPOTrainer._compute_loss`, reference log-probs from
                `GRPOTrainer._get_per_token_logps_and_entropies`, advantages with TRL's `nanstd`

The trainers are not constructed: that needs a tokenizer, a dataset pipeline and reward
functions, none of which the loss reads. Their unbound loss methods run on a stand-in `self`
carrying the attributes they read, copied as the trainers' `__init__` copies them from a real
`DPOConfig` / `GRPOConfig`, with a one-process stand-in for the accelerator.

Where TRL's convention differs from jaxlab's (docs/vlm.md, "Parity with TRL"), TRL is set to
jaxlab's for the parity assertion, and a second assertion shows that TRL's own convention gives
another number, so a change on either side is noticed.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import types
from collections import defaultdict

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
trl = pytest.importorskip("trl", minversion="1.16")

from trl import DPOConfig, GRPOConfig  # noqa: E402
from trl.trainer.dpo_trainer import DataCollatorForPreference, DPOTrainer  # noqa: E402
from trl.trainer.grpo_trainer import GRPOTrainer  # noqa: E402
from trl.trainer.utils import add_fused_lm_head, nanstd, selective_log_softmax  # noqa: E402

from jaxlab.models.hf_mapping import from_param  # noqa: E402
from jaxlab.models.qwen2 import Qwen2LM, load_pretrained  # noqa: E402
from jaxlab.models.qwen2.hf_io import hf_rules  # noqa: E402
from jaxlab.posttrain import (  # noqa: E402
    BcoState, bco_pair_loss, dpo_loss, generation_loss, group_advantages, grpo_loss, mask_after_eos, mpo_loss,
    sequence_logprobs, token_logprobs)

# transformers 5 deprecates the checkpointing names that TRL 1.16 still reads.
pytestmark = pytest.mark.filterwarnings("ignore:`(is_)?gradient_checkpointing` is deprecated:FutureWarning")

VOCAB, PAD, EOS = 50, 0, 2
WIDTH = 12  # Padded length of every preference row (prompt <= 5, response <= 6 tokens).
TOL = 1e-5
# A difference this large is a different convention, not rounding.
DIFFERENT = 1e-3
REF_NOISE = 1.0
GRPO_BETA = 0.04  # TRL 0.14's default, which the spec follows.

# One process: gathers and reductions are the identity.
_ACCELERATOR = types.SimpleNamespace(
    device=torch.device("cpu"), num_processes=1, is_main_process=True, sync_gradients=True,
    autocast=contextlib.nullcontext, gather=lambda x: x, gather_for_metrics=lambda x: x,
    reduce=lambda x, reduction="sum": x, unwrap_model=lambda m: m)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
  """(torch policy, torch reference, jaxlab config, jaxlab policy params, jaxlab reference params, tmp dir)."""
  config = transformers.Qwen2Config(
      vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
      num_key_value_heads=1, max_position_embeddings=64, tie_word_embeddings=False)
  torch.manual_seed(0)
  policy = transformers.Qwen2ForCausalLM(config)
  reference = transformers.Qwen2ForCausalLM(config)
  with torch.no_grad():
    for (name, p), q in zip(policy.named_parameters(), reference.parameters()):
      if p.ndim == 1:
        p.copy_((1.0 if "norm" in name else 0.0) + 0.2 * torch.randn_like(p))
      else:
        p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
      # A reference far enough away that beta * r, and so BCO's delta, is well above rounding.
      q.copy_(p + REF_NOISE * p.std() * torch.randn_like(p))
  root = tmp_path_factory.mktemp("trl_parity")
  params = {}
  for name, model in (("policy", policy), ("reference", reference)):
    model.save_pretrained(root / name)
    jax_config, params[name] = load_pretrained(root / name)
  # What the trainers' __init__ does: policy outputs for DPO's metrics and GRPO's entropy, log-probs for the reference.
  add_fused_lm_head(policy, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
  add_fused_lm_head(reference)
  policy.train()
  reference.eval()
  # Tiny matmuls: threads contending for a few shared cores make them ~100x slower than one thread.
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  yield policy, reference, jax_config, params["policy"], params["reference"], root
  torch.set_num_threads(threads)


def _logits(config, params, tokens, attention):
  return Qwen2LM(config).apply({"params": params}, tokens, attention_mask_bt=attention)[0]


# Each jaxlab computation is one jit per config, so the module compiles a handful of times, not per op.
@functools.lru_cache(maxsize=None)
def _scorer(config):
  return jax.jit(lambda params, tokens, attention, response: sequence_logprobs(
      _logits(config, params, tokens, attention), tokens, response))


def _score(config, params, tokens, attention, response):
  """jaxlab's `sequence_logprobs` (summed [B], per-token [B, T]) of the response tokens."""
  return _scorer(config)(params, *(jnp.asarray(np.asarray(x), jnp.int32) for x in (tokens, attention, response)))


def _collate(examples):
  # One padded width for every batch, so jaxlab's forward compiles once; padding changes no value.
  return DataCollatorForPreference(pad_token_id=PAD, pad_to_multiple_of=WIDTH)(examples)


# DPO family.


def _pairs(seed: int, n: int = 3) -> list[dict]:
  """Pre-tokenized pairs of unequal prompt and response lengths (EOS-terminated responses)."""
  rng = np.random.default_rng(seed)

  def ids(low, high, eos=False):
    out = rng.integers(3, VOCAB, size=int(rng.integers(low, high + 1))).tolist()
    return out + [EOS] if eos else out

  return [dict(prompt_ids=ids(2, 5), chosen_ids=ids(1, 5, eos=True), rejected_ids=ids(1, 5, eos=True))
          for _ in range(n)]


def _dpo_self(models, **config):
  """A stand-in DPOTrainer: the attributes `_compute_loss` and `compute_ref_log_probs` read, as __init__ sets them."""
  policy, reference, *_, tmp = models
  args = DPOConfig(output_dir=str(tmp), use_cpu=True, bf16=False, report_to=[], **config)
  return types.SimpleNamespace(
      args=args, model=policy, ref_model=reference, accelerator=_ACCELERATOR, beta=args.beta,
      precompute_ref_logps=args.precompute_ref_log_probs, loss_types=args.loss_type,
      loss_weights=args.loss_weights or [1.0] * len(args.loss_type), ld_alpha=args.ld_alpha,
      f_divergence_type=args.f_divergence_type, f_alpha_divergence_coef=args.f_alpha_divergence_coef,
      label_smoothing=args.label_smoothing, use_weighting=args.use_weighting, aux_loss_enabled=False,
      _metrics={"train": defaultdict(list), "eval": defaultdict(list)}, _total_train_tokens=0, _tp_size=1)


def _trl_dpo(models, examples, delta: float = 0.0, **config) -> tuple[float, dict]:
  """(TRL's loss, its metrics) on `examples` collated as TRL collates them.

  `delta` shifts both reference log-probs by delta / beta: TRL's bco_pair then sees
  beta * r - delta, i.e. a running-mean delta that TRL itself no longer carries. The sigmoid
  loss sees only the difference of the two log-ratios, so the shift leaves it unchanged.
  """
  trainer = _dpo_self(models, **config)
  inputs = _collate(examples)
  if delta or trainer.precompute_ref_logps:
    with torch.no_grad():
      ref_chosen, ref_rejected = DPOTrainer.compute_ref_log_probs(trainer, trainer.ref_model, inputs)
    trainer.precompute_ref_logps = True
    inputs = dict(inputs, ref_chosen_logps=ref_chosen + delta / trainer.beta,
                  ref_rejected_logps=ref_rejected + delta / trainer.beta)
  with torch.no_grad():
    loss = DPOTrainer._compute_loss(trainer, trainer.model, inputs, return_outputs=False)
  return float(loss), trainer._metrics["train"]


def _jax_pairs(models, examples):
  """jaxlab's (policy chosen, policy rejected, ref chosen, ref rejected) sums [B], chosen per-token log-probs and mask.

  The rows are TRL's collated batch (chosen rows then rejected rows, right-padded).
  """
  _, _, config, policy, reference, _ = models
  inputs = _collate(examples)
  rows = [inputs[k] for k in ("input_ids", "attention_mask", "completion_mask")]
  policy_sum, policy_tok = _score(config, policy, *rows)
  ref_sum, _ = _score(config, reference, *rows)
  response = rows[2].numpy()
  b = len(examples)
  return (policy_sum[:b], policy_sum[b:], ref_sum[:b], ref_sum[b:]), policy_tok[:b], response[:b]


def test_response_logprobs_match_trls_fused_head_and_selective_log_softmax(models):
  policy, _, config, params, _, _ = models
  inputs = _collate(_pairs(seed=0))
  tokens, attention, response = inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"]
  labels = tokens.masked_fill(response == 0, -100)  # As DPOTrainer builds them.
  with torch.no_grad():
    fused = policy(input_ids=tokens, attention_mask=attention, labels=labels, fused_lm_head=True).log_probs.numpy()
    logits = policy(input_ids=tokens, attention_mask=attention).logits
    selective = (selective_log_softmax(logits[:, :-1], tokens[:, 1:]) * response[:, 1:]).numpy()
  total, per_token = _score(config, params, tokens, attention, response)
  assert fused.shape == per_token[:, 1:].shape and np.abs(fused).max() > 1.0
  np.testing.assert_allclose(per_token[:, 1:], fused, rtol=0, atol=TOL)
  np.testing.assert_allclose(per_token[:, 1:], selective, rtol=0, atol=TOL)
  np.testing.assert_allclose(total, fused.sum(axis=1), rtol=0, atol=TOL)


def test_dpo_sigmoid_matches_trl(models):
  examples = _pairs(seed=1)
  logps, _, _ = _jax_pairs(models, examples)
  ours = float(jnp.mean(dpo_loss(*logps, beta=0.1)))
  # TRL's defaults are DPO's: sigmoid, beta 0.1, the reference model run inside the loss.
  theirs, metrics = _trl_dpo(models, examples)
  defaults = _dpo_self(models).args
  assert (defaults.beta, defaults.loss_type, defaults.label_smoothing) == (0.1, ["sigmoid"], 0.0)
  np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL)
  assert abs(ours - np.log(2)) > DIFFERENT  # The pairs are not ties.
  np.testing.assert_allclose(metrics["logps/chosen"][0], float(jnp.mean(logps[0])), rtol=0, atol=TOL)
  # TRL 1.x's sigmoid ignores label_smoothing (cDPO was dropped); jaxlab has none either.
  smoothed, _ = _trl_dpo(models, examples, label_smoothing=0.1)
  np.testing.assert_allclose(smoothed, theirs, rtol=0, atol=TOL)


def test_bco_pair_matches_trl_with_the_running_delta_over_three_batches(models):
  """jaxlab's loss on batch k uses delta_k, the mean of the batch means of beta * r up to and
  including batch k: TRL 0.x's order (InternVL's MPO trainer updated a RunningMoments with this
  batch's mean before the loss). TRL 1.x's bco_pair has no delta (0 on every batch). Every
  version averages batch means with equal weight (one update per batch, not per sample).
  """
  beta = 0.1
  state = BcoState.init()
  batch_means = []
  for k, seed in enumerate((2, 3, 4)):
    examples = _pairs(seed)
    logps, _, _ = _jax_pairs(models, examples)
    before = state
    loss_b, state = bco_pair_loss(*logps, before, beta=beta)
    ours = float(jnp.mean(loss_b))
    # The batch mean of beta * r over chosen and rejected, from TRL's logged rewards (equal counts).
    _, metrics = _trl_dpo(models, examples, beta=beta)
    batch_means.append((metrics["rewards/chosen"][0] + metrics["rewards/rejected"][0]) / 2)
    np.testing.assert_allclose(float(state.delta), np.mean(batch_means), rtol=0, atol=TOL)
    assert int(state.count) == k + 1
    theirs, _ = _trl_dpo(models, examples, delta=float(state.delta), loss_type=["bco_pair"], beta=beta)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL)
    trl_1x, _ = _trl_dpo(models, examples, loss_type=["bco_pair"], beta=beta)
    assert abs(trl_1x - ours) > DIFFERENT  # TRL 1.x: no delta
    if k == 0:
      # The spec's wording, "the running mean of past rewards", read as the earlier batches only,
      # would give delta 0 on the first batch: a different loss, which the reference did not use.
      past_only, _ = _trl_dpo(models, examples, delta=float(before.delta), loss_type=["bco_pair"], beta=beta)
      assert abs(past_only - ours) > DIFFERENT
  assert abs(float(state.delta)) > 10 * DIFFERENT


def test_generation_term_matches_trls_sft_loss_per_response(models):
  """jaxlab averages each chosen response's token NLL, then the pairs; TRL's "sft" (and TRL 0.x's
  `rpo_alpha` NLL, a CrossEntropyLoss over the chosen rows) averages all chosen tokens of the batch.
  The two agree per pair, so TRL runs one pair per batch for the parity assertion."""
  examples = _pairs(seed=5)
  _, chosen_tok, chosen_mask = _jax_pairs(models, examples)
  per_pair = generation_loss(chosen_tok, chosen_mask)
  trl_per_pair = [_trl_dpo(models, [e], loss_type=["sft"])[0] for e in examples]
  np.testing.assert_allclose(per_pair, trl_per_pair, rtol=0, atol=TOL)
  ours = float(jnp.mean(per_pair))
  batched, _ = _trl_dpo(models, examples, loss_type=["sft"])
  counts = chosen_mask.sum(axis=1)
  assert len(set(counts.tolist())) > 1
  np.testing.assert_allclose(batched, float(jnp.sum(per_pair * counts) / counts.sum()), rtol=0, atol=TOL)
  assert abs(batched - ours) > DIFFERENT


def test_mpo_matches_trls_mpo_loss_weights(models):
  """TRL's MPO combination (sigmoid, bco_pair, sft weighted 0.8, 0.2, 1), one pair per call so that
  "sft" averages per response, at jaxlab's delta (this batch included), averaged over the pairs: jaxlab's mpo_loss."""
  mpo = dict(loss_type=["sigmoid", "bco_pair", "sft"], loss_weights=[0.8, 0.2, 1.0])
  warmup, examples = _pairs(seed=6), _pairs(seed=7)
  _, state = bco_pair_loss(*_jax_pairs(models, warmup)[0], BcoState.init())
  logps, chosen_tok, chosen_mask = _jax_pairs(models, examples)
  total, terms, state = mpo_loss(*logps, chosen_tok, chosen_mask, state)
  theirs = np.mean([_trl_dpo(models, [e], delta=float(state.delta), **mpo)[0] for e in examples])
  np.testing.assert_allclose(float(total), theirs, rtol=0, atol=TOL)
  # TRL's batched MPO: "sft" over all chosen tokens and no delta.
  batched, _ = _trl_dpo(models, examples, **mpo)
  assert abs(batched - float(total)) > DIFFERENT
  assert min(abs(float(v)) for v in terms.values()) > DIFFERENT


# GRPO.

GROUP = 4
PROMPTS = [[7, 11, 13], [5, 9, 21, 33, 17]]
# Sampled completions: EOS at different places, tokens after it, one row with no EOS (truncated).
COMPLETIONS = np.array([
    [12, EOS, 30, 31, 32, 33],
    [14, 15, 16, EOS, 9, 9],
    [20, 21, 22, 23, 24, 25],
    [EOS, 40, 41, 42, 43, 44],
    [18, 19, EOS, 3, 4, 5],
    [26, 27, 28, 29, 30, EOS],
    [8, EOS, EOS, 6, 7, 8],
    [35, 36, 37, 38, EOS, 10],
])
REWARDS = np.array([[1.0, 0.0, 2.0, 0.5], [1.5, 1.5, 0.0, 1.0]], np.float32)


def _grpo_rows():
  """TRL's layout: left-padded prompts [N, P] and their masks, and the sampled completions [N, C]."""
  width = max(map(len, PROMPTS))
  prompt = np.array([[PAD] * (width - len(p)) + p for p in PROMPTS for _ in range(GROUP)])
  prompt_mask = np.array([[0] * (width - len(p)) + [1] * len(p) for p in PROMPTS for _ in range(GROUP)])
  return prompt, prompt_mask, COMPLETIONS


def _grpo_self(models, **config):
  """A stand-in GRPOTrainer: the attributes `_compute_loss` reads, as __init__ sets them."""
  policy, reference, *_, tmp = models
  args = GRPOConfig(output_dir=str(tmp), use_cpu=True, bf16=False, report_to=[], num_generations=GROUP, **config)
  trainer = types.SimpleNamespace(
      args=args, model=policy, ref_model=reference, accelerator=_ACCELERATOR, beta=args.beta,
      loss_type=args.loss_type, epsilon_low=args.epsilon,
      epsilon_high=args.epsilon_high if args.epsilon_high is not None else args.epsilon,
      importance_sampling_level=args.importance_sampling_level,
      off_policy_mask_threshold=args.off_policy_mask_threshold, top_entropy_quantile=args.top_entropy_quantile,
      use_vllm=args.use_vllm,
      vllm_importance_sampling_correction=args.vllm_importance_sampling_correction,
      max_completion_length=args.max_completion_length, aux_loss_enabled=False,
      _entropy_bonus_enabled=args.entropy_coef != 0.0 or args.use_adaptive_entropy,
      current_gradient_accumulation_steps=args.gradient_accumulation_steps,
      _metrics={"train": defaultdict(list), "eval": defaultdict(list)})
  trainer._get_per_token_logps_and_entropies = types.MethodType(GRPOTrainer._get_per_token_logps_and_entropies,
                                                                trainer)
  return trainer


def _trl_advantages(rewards_bg: np.ndarray, scale_rewards: str) -> np.ndarray:
  """`_generate_and_score_completions`' advantages (inline there), with TRL's `nanstd`."""
  rewards = torch.as_tensor(rewards_bg.reshape(-1))
  mean = rewards.view(-1, GROUP).mean(dim=1).repeat_interleave(GROUP)
  if scale_rewards == "group":
    std = nanstd(rewards.view(-1, GROUP), dim=1).repeat_interleave(GROUP)
  else:
    std = nanstd(rewards).expand_as(rewards)
  return ((rewards - mean) / (std + 1e-4)).numpy()


def _trl_grpo(models, completion_mask: np.ndarray, advantages: np.ndarray, old_logps=None, **config):
  """(TRL's loss, {HF tensor name: gradient}) on the GRPO rows, with the completions masked by `completion_mask`.

  `old_logps` [N, C]: the sampling policy's log-probs, for the clipped ratio; None: a single
  update, where TRL uses the policy's own, detached.
  """
  trainer = _grpo_self(models, **config)
  prompt, prompt_mask, completions = _grpo_rows()
  # TRL's sampler drops what follows the first EOS and pads; a mask with no cut keeps every sampled token.
  completions = np.where(completion_mask.astype(bool), completions, PAD)
  inputs = {k: torch.as_tensor(v) for k, v in dict(
      prompt_ids=prompt, prompt_mask=prompt_mask, completion_ids=completions, completion_mask=completion_mask).items()}
  inputs["advantages"] = torch.as_tensor(advantages)
  inputs["num_items_in_batch"] = inputs["completion_mask"].sum()  # "dapo"'s normalizer: the batch's tokens.
  if old_logps is not None:
    inputs["old_per_token_logps"] = torch.as_tensor(old_logps)
  with torch.no_grad():
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    attention = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    inputs["ref_per_token_logps"], _, _ = trainer._get_per_token_logps_and_entropies(
        trainer.ref_model, ids, attention, completions.shape[1])
  trainer.model.zero_grad()
  loss = GRPOTrainer._compute_loss(trainer, trainer.model, inputs)
  loss.backward()
  grads = {name: p.grad.numpy().copy() for name, p in trainer.model.named_parameters()}
  return float(loss.detach()), grads


CLIP_EPSILON = 0.2  # TRL's default epsilon.


@pytest.fixture(scope="module")
def jax_grpo(models):
  """jaxlab's GRPO on the rows as sampled (post-EOS tokens included, cut by `mask_after_eos`).

  One compile for both updates: the single update (TRL 0.14's, the spec's), and a clipped one
  against sampling log-probs 0.3-perturbed from the policy's. Returns a namespace with `single`
  and `clipped` ((loss, {HF tensor name: gradient})), the cut completion `mask` [N, C], the
  sampling log-probs `old` [N, C] and the policy's `ratio` to them [N, C].
  """
  _, _, config, policy, reference, _ = models
  prompt, prompt_mask, completions = _grpo_rows()
  tokens = np.concatenate([prompt, completions], axis=1)
  attention = np.concatenate([prompt_mask, np.ones_like(completions)], axis=1)
  sampled = np.concatenate([np.zeros_like(prompt), np.ones_like(completions)], axis=1)
  noise = 0.3 * np.random.default_rng(0).normal(size=tokens.shape).astype(np.float32)

  @jax.jit
  def step(policy, reference, tokens, attention, sampled, noise):
    mask = mask_after_eos(sampled, tokens, EOS)
    advantages = group_advantages(jnp.asarray(REWARDS)).reshape(-1)
    ref = token_logprobs(_logits(config, reference, tokens, attention), tokens)
    old = jax.lax.stop_gradient(token_logprobs(_logits(config, policy, tokens, attention), tokens)) + noise

    def loss_fn(params, clipped):
      logp = token_logprobs(_logits(config, params, tokens, attention), tokens)
      extra = dict(old_logprobs_nt=old, clip_epsilon=CLIP_EPSILON) if clipped else {}
      return grpo_loss(logp, ref, advantages, mask, beta=GRPO_BETA, **extra)[0]

    single = jax.value_and_grad(loss_fn)(policy, False)
    clipped = jax.value_and_grad(loss_fn)(policy, True)
    return single, clipped, mask, old

  rows = (jnp.asarray(x, jnp.int32) for x in (tokens, attention, sampled))
  single, clipped, mask, old = step(policy, reference, *rows, jnp.asarray(noise))

  def named(grads):
    flat = traverse_util.flatten_dict(grads)
    return {rule.names[0]: from_param(rule, np.asarray(flat[rule.path]))[0] for rule in hf_rules(config)}

  width = prompt.shape[1]
  return types.SimpleNamespace(
      single=(float(single[0]), named(single[1])), clipped=(float(clipped[0]), named(clipped[1])),
      mask=np.asarray(mask[:, width:], np.int64), old=np.array(old[:, width:]), ratio=np.exp(-noise[:, width:]))


def _assert_grads_close(ours, theirs):
  assert ours.keys() == theirs.keys()
  for name in ours:
    np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-4, atol=TOL, err_msg=name)


def _grads_differ(a, b) -> bool:
  return max(float(np.abs(a[k] - b[k]).max()) for k in a) > DIFFERENT


def test_group_advantages_match_trls_group_scaling():
  ours = np.asarray(group_advantages(jnp.asarray(REWARDS))).reshape(-1)
  np.testing.assert_allclose(ours, _trl_advantages(REWARDS, "group"), rtol=0, atol=TOL)
  assert GRPOConfig.scale_rewards == "group"
  assert "advantages / (std_rewards + 1e-4)" in inspect.getsource(GRPOTrainer._generate_and_score_completions)
  assert np.abs(_trl_advantages(REWARDS, "batch") - ours).max() > DIFFERENT


def test_grpo_loss_and_gradients_match_trl_at_trl_014s_conventions(models, jax_grpo):
  """The spec's GRPO is TRL 0.14's: loss_type "grpo" (each completion's token mean, then the batch),
  beta 0.04, the k3 KL without TRL 1.x's importance-sampling correction. TRL 1.x's defaults differ
  in each, and are asserted to give other numbers; the sampler's cut after the first EOS (kept) and
  the sampling temperature 1 are the same on both sides."""
  (ours, our_grads), mask = jax_grpo.single, jax_grpo.mask
  assert mask.sum(axis=1).tolist() == [2, 4, 6, 1, 3, 6, 2, 5]
  advantages = _trl_advantages(REWARDS, "group")
  spec = dict(loss_type="grpo", beta=GRPO_BETA, use_bias_correction_kl=False)
  theirs, their_grads = _trl_grpo(models, mask, advantages, **spec)
  np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL)
  _assert_grads_close(our_grads, their_grads)
  assert max(float(np.abs(g).max()) for g in our_grads.values()) > 10 * DIFFERENT

  source = inspect.getsource(GRPOTrainer._generate_single_turn)
  assert "sequence_indices <= eos_idx" in source  # TRL's sampler keeps the first EOS and cuts after it.
  uncut, _ = _trl_grpo(models, np.ones_like(mask), advantages, **spec)
  assert abs(uncut - ours) > DIFFERENT

  defaults = GRPOConfig(output_dir=str(models[5]), use_cpu=True, bf16=False, report_to=[])
  assert (defaults.loss_type, defaults.beta, defaults.use_bias_correction_kl) == ("dapo", 0.0, True)
  # TRL scores log-probs at the sampling temperature (logits / T); jaxlab's are TRL's at T = 1.
  assert defaults.temperature == 1.0
  for other in (dict(loss_type="dapo"), dict(loss_type="bnpo"), dict(beta=0.0)):
    value, _ = _trl_grpo(models, mask, advantages, **dict(spec, **other))
    assert abs(value - ours) > DIFFERENT, other
  # The importance-sampling-corrected KL multiplies it by a ratio that is 1 in value: same loss, other gradient.
  value, grads = _trl_grpo(models, mask, advantages, **dict(spec, use_bias_correction_kl=True))
  np.testing.assert_allclose(value, ours, rtol=0, atol=TOL)
  assert _grads_differ(grads, our_grads)
  value, _ = _trl_grpo(models, mask, advantages)  # Every TRL 1.x default.
  assert abs(value - ours) > DIFFERENT


def test_clipped_grpo_update_matches_trls_epsilon_clipping(models, jax_grpo):
  """Several updates per batch: the ratio against the sampling policy, clipped to [1 - eps, 1 + eps]."""
  (ours, our_grads), mask, old = jax_grpo.clipped, jax_grpo.mask, jax_grpo.old
  distance = np.abs(jax_grpo.ratio - 1)[mask.astype(bool)]
  assert np.any(distance > CLIP_EPSILON) and np.any(distance < CLIP_EPSILON)  # Tokens on both sides of the clip.
  theirs, their_grads = _trl_grpo(models, mask, _trl_advantages(REWARDS, "group"), old_logps=old, loss_type="grpo",
                                  beta=GRPO_BETA, use_bias_correction_kl=False, epsilon=CLIP_EPSILON)
  np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL)
  _assert_grads_close(our_grads, their_grads)
  assert abs(ours - jax_grpo.single[0]) > DIFFERENT

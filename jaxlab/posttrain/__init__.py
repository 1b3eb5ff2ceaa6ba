"""Post-training of causal LMs: response log-probs and pure losses (DPO, BCO-pair, MPO, GRPO).

Losses take log-probs computed by the caller from any jaxlab LM's logits
(`sequence_logprobs`), so one set serves Qwen2, the MoE LMs and the InternVL model; the
reference policy is the caller's frozen parameter pytree evaluated the same way.
"""

from jaxlab.posttrain.grpo import group_advantages, grpo_loss, k3_kl
from jaxlab.posttrain.grpo_step import GrpoSettings, grpo_loss_fn, make_grpo_step
from jaxlab.posttrain.logprobs import mask_after_eos, sequence_logprobs, token_logprobs
from jaxlab.posttrain.pair_records import PairBuildReport, PairFormatError, build_pairs, read_pairs, write_pairs
from jaxlab.posttrain.pairs import (
    DROP_REASONS, ChatPairTokenizer, DropReport, PairRecordError, PairTokenizer, PreferencePairSource, SingleTileLoader,
    check_image_file, shapes_pair_tokenizer)
from jaxlab.posttrain.policy import lm_logits_fn, moe_logits_fn, vlm_logits_fn
from jaxlab.posttrain.preference import BcoState, MpoWeights, bco_pair_loss, dpo_loss, generation_loss, mpo_loss
from jaxlab.posttrain.preference_batch import check_pair_batch, pair_forward
from jaxlab.posttrain.preference_step import PRESETS, PreferenceTrainState, make_preference_step, preference_weights
from jaxlab.posttrain.reference import ReferencePolicy
from jaxlab.posttrain.rollout import lm_sampler, rollout_batch, vlm_sampler

__all__ = [
    "bco_pair_loss",
    "BcoState",
    "build_pairs",
    "ChatPairTokenizer",
    "check_image_file",
    "check_pair_batch",
    "dpo_loss",
    "DROP_REASONS",
    "DropReport",
    "generation_loss",
    "group_advantages",
    "grpo_loss",
    "grpo_loss_fn",
    "GrpoSettings",
    "k3_kl",
    "lm_logits_fn",
    "lm_sampler",
    "make_grpo_step",
    "make_preference_step",
    "mask_after_eos",
    "moe_logits_fn",
    "mpo_loss",
    "MpoWeights",
    "pair_forward",
    "PairBuildReport",
    "PairFormatError",
    "PairRecordError",
    "PairTokenizer",
    "preference_weights",
    "PreferencePairSource",
    "PreferenceTrainState",
    "PRESETS",
    "read_pairs",
    "ReferencePolicy",
    "rollout_batch",
    "sequence_logprobs",
    "shapes_pair_tokenizer",
    "SingleTileLoader",
    "token_logprobs",
    "vlm_logits_fn",
    "vlm_sampler",
    "write_pairs",
]

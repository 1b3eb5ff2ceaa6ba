"""Post-training of causal LMs: response log-probs and pure losses (DPO, BCO-pair, MPO, GRPO).

Losses take log-probs computed by the caller from any jaxlab LM's logits
(`sequence_logprobs`), so one set serves Qwen2, the MoE LMs and the InternVL model; the
reference policy is the caller's frozen parameter pytree evaluated the same way.
"""

from jaxlab.posttrain.grpo import group_advantages, grpo_loss, k3_kl
from jaxlab.posttrain.logprobs import mask_after_eos, sequence_logprobs, token_logprobs
from jaxlab.posttrain.preference import BcoState, MpoWeights, bco_pair_loss, dpo_loss, generation_loss, mpo_loss

__all__ = [
    "BcoState",
    "MpoWeights",
    "bco_pair_loss",
    "dpo_loss",
    "generation_loss",
    "group_advantages",
    "grpo_loss",
    "k3_kl",
    "mask_after_eos",
    "mpo_loss",
    "sequence_logprobs",
    "token_logprobs",
]

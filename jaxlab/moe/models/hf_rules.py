"""Which Hugging Face tensors make each `MoEDecoderLM` parameter, with what shapes and transposes.

Names are those of hub checkpoints (and of what transformers 5 `save_pretrained` writes by default,
which converts back to them): torch Linear weights are [out, in], so kernels are their transpose.

  model.embed_tokens.weight [V, D]                      -> embed/embedding
  model.norm.weight [D]                                 -> final_norm/scale
  lm_head.weight [V, D]                                 -> lm_head/kernel (transposed; absent when tied)
  model.layers.{i}.input_layernorm.weight               -> layers_{i}/input_norm/scale
  model.layers.{i}.post_attention_layernorm.weight      -> layers_{i}/post_attention_norm/scale
  model.layers.{i}.self_attn.{q,k,v,o}_proj.{weight,bias} -> layers_{i}/attention/{q,k,v,o}/{kernel,bias}
  model.layers.{i}.self_attn.{q,k}_norm.weight          -> layers_{i}/attention/{q,k}_norm/scale (Qwen3)
  Mixtral, M = model.layers.{i}.block_sparse_moe:
    M.gate.weight [E, D]                                -> moe/router [D, E]
    M.experts.{e}.w1.weight [F, D] (gate), w3 (up)      -> moe/gate_up[e] = [w1.T | w3.T]  [D, 2F]
    M.experts.{e}.w2.weight [D, F]                      -> moe/down[e] = w2.T               [F, D]
  Qwen2/3-MoE, M = model.layers.{i}.mlp:
    M.gate.weight, M.experts.{e}.{gate,up,down}_proj.weight   (as above: gate, up, down)
    M.shared_expert.{gate,up,down}_proj.weight          -> moe/shared_gate_up [1, D, 2Fs], moe/shared_down
    M.shared_expert_gate.weight [1, D]                  -> moe/shared_gate [D, 1]
    dense layers: M.{gate,up,down}_proj.weight          -> mlp/gate_up [1, D, 2I], mlp/down [1, I, D]

The fused layout that transformers 5 holds in memory (and writes with
`save_pretrained(..., save_original_format=False)`) replaces a layer's per-expert tensors by
  model.layers.{i}.mlp.experts.gate_up_proj [E, 2F, D]  (rows: gate then up)  -> moe/gate_up (transpose 1, 2)
  model.layers.{i}.mlp.experts.down_proj    [E, D, F]                         -> moe/down (transpose 1, 2)
and, for Mixtral, spells every `block_sparse_moe` as `mlp`. Either layout is read, layer by layer.
"""

from __future__ import annotations

import dataclasses
import re

from jaxlab.models.hf_mapping import Rule
from jaxlab.moe.models.config import MoELMConfig

# Tensors transformers itself skips when loading.
_IGNORED = re.compile(r"(^|\.)rotary_emb\.inv_freq$")
_MIXTRAL_FUSED_SPELLING = re.compile(r"^(model\.layers\.\d+)\.mlp\.")


def canonical_name(config: MoELMConfig, name: str) -> str:
  """The hub spelling of a checkpoint tensor name (Mixtral's fused layout says `mlp` for `block_sparse_moe`)."""
  if config.architecture == "mixtral":
    return _MIXTRAL_FUSED_SPELLING.sub(r"\1.block_sparse_moe.", name)
  return name


def is_ignored(config: MoELMConfig, name: str) -> bool:
  """Tensors a checkpoint may hold that the model does not use (transformers skips them too)."""
  return bool(_IGNORED.search(name)) or (config.tie_word_embeddings and name == "lm_head.weight")


def moe_prefix(config: MoELMConfig, layer: int) -> str:
  block = "block_sparse_moe" if config.architecture == "mixtral" else "mlp"
  return f"model.layers.{layer}.{block}"


def fused_names(config: MoELMConfig, layer: int) -> tuple[str, str]:
  """The fused gate_up / down tensor names of a MoE layer, in hub spelling."""
  prefix = moe_prefix(config, layer)
  return f"{prefix}.experts.gate_up_proj", f"{prefix}.experts.down_proj"


def _swiglu_rules(path, prefixes: list[str], names3: tuple[str, str, str], d: int, f: int) -> list[Rule]:
  """gate_up / down rules of one SwiGLU per prefix, made of tensors `{prefix}{gate|up|down name}`."""
  gate, up, down = names3
  num = len(prefixes)
  gate_up_names = tuple(n for prefix in prefixes for n in (prefix + gate, prefix + up))
  return [
      Rule(path + ("gate_up",), gate_up_names, ((f, d),) * (2 * num), "gate_up"),
      Rule(path + ("down",), tuple(prefix + down for prefix in prefixes), ((d, f),) * num, "down"),
  ]


def rules(config: MoELMConfig, fused_layers: frozenset[int] = frozenset()) -> list[Rule]:
  """Every parameter's rule; MoE layers in `fused_layers` read the fused expert tensors."""
  c = config
  d, v, hd = c.hidden_size, c.vocab_size, c.head_dim
  out = [
      Rule(("embed", "embedding"), ("model.embed_tokens.weight",), ((v, d),), "copy"),
  ]
  mixtral = c.architecture == "mixtral"
  for i in range(c.num_layers):
    p, lp = f"model.layers.{i}", (f"layers_{i}",)
    out += [
        Rule(lp + ("input_norm", "scale"), (f"{p}.input_layernorm.weight",), ((d,),), "copy"),
        Rule(lp + ("post_attention_norm", "scale"), (f"{p}.post_attention_layernorm.weight",), ((d,),), "copy"),
    ]
    widths = {"q": c.num_heads * hd, "k": c.num_kv_heads * hd, "v": c.num_kv_heads * hd}
    for proj, width in widths.items():
      name = f"{p}.self_attn.{proj}_proj"
      out.append(Rule(lp + ("attention", proj, "kernel"), (f"{name}.weight",), ((width, d),), "linear"))
      if c.attention_bias:
        out.append(Rule(lp + ("attention", proj, "bias"), (f"{name}.bias",), ((width,),), "copy"))
    o_name = f"{p}.self_attn.o_proj"
    out.append(Rule(lp + ("attention", "o", "kernel"), (f"{o_name}.weight",), ((d, widths["q"]),), "linear"))
    if c.attention_out_bias:
      out.append(Rule(lp + ("attention", "o", "bias"), (f"{o_name}.bias",), ((d,),), "copy"))
    if c.qk_norm:
      for norm in ("q_norm", "k_norm"):
        out.append(Rule(lp + ("attention", norm, "scale"), (f"{p}.self_attn.{norm}.weight",), ((hd,),), "copy"))
    qwen_names = (".gate_proj.weight", ".up_proj.weight", ".down_proj.weight")
    if not c.is_moe_layer(i):
      out += _swiglu_rules(lp + ("mlp",), [f"{p}.mlp"], qwen_names, d, c.intermediate_size)
      continue
    m, mp = moe_prefix(c, i), lp + ("moe",)
    e, f = c.num_experts, c.moe_intermediate_size
    out.append(Rule(mp + ("router",), (f"{m}.gate.weight",), ((e, d),), "linear"))
    if i in fused_layers:
      gate_up, down = fused_names(c, i)
      out += [Rule(mp + ("gate_up",), (gate_up,), ((e, 2 * f, d),), "fused"),
              Rule(mp + ("down",), (down,), ((e, d, f),), "fused")]
    else:
      expert_names = (".w1.weight", ".w3.weight", ".w2.weight") if mixtral else qwen_names
      out += _swiglu_rules(mp, [f"{m}.experts.{j}" for j in range(e)], expert_names, d, f)
    fs = c.shared_expert_intermediate_size
    if fs:
      shared = _swiglu_rules(mp, [f"{m}.shared_expert"], qwen_names, d, fs)
      out += [dataclasses.replace(r, path=mp + ("shared_" + r.path[-1],)) for r in shared]
      if c.shared_expert_gate:
        out.append(Rule(mp + ("shared_gate",), (f"{m}.shared_expert_gate.weight",), ((1, d),), "linear"))
  out.append(Rule(("final_norm", "scale"), ("model.norm.weight",), ((d,),), "copy"))
  if not c.tie_word_embeddings:
    out.append(Rule(("lm_head", "kernel"), ("lm_head.weight",), ((v, d),), "linear"))
  return out

"""`MoELMConfig`: the shape and numerics of a Mixtral / Qwen2-MoE / Qwen3-MoE decoder, and its config.json.

`from_hf_dict` reads a Hugging Face `config.json` dict (transformers 4.x and 5.x spellings) and
refuses, naming the key, anything the jaxlab model would compute differently (sliding-window
attention, scaled RoPE, another activation). `to_hf_dict` writes a dict that transformers loads
into the same model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from jaxlab.models import hf_config, hf_generation
from jaxlab.models.hf_common import COMPUTE_DTYPES
from jaxlab.models.hf_generation import GenerationSettings
from jaxlab.ops.registry import check_implementation

ARCHITECTURES = ("mixtral", "qwen2_moe", "qwen3_moe")

_HF_CLASS = {
    "mixtral": "MixtralForCausalLM", "qwen2_moe": "Qwen2MoeForCausalLM", "qwen3_moe": "Qwen3MoeForCausalLM",
}
# transformers' defaults for keys a config.json may leave out.
_DEFAULT_THETA = {"mixtral": 1e6, "qwen2_moe": 1e4, "qwen3_moe": 1e4}
_DEFAULT_EPS = {"mixtral": 1e-5, "qwen2_moe": 1e-6, "qwen3_moe": 1e-6}
_DEFAULT_TOKEN_IDS = {"mixtral": {"bos_token_id": 1, "eos_token_id": 2}}


@dataclasses.dataclass(frozen=True)
class MoELMConfig:
  """A decoder-only MoE language model (pre-norm, GQA + RoPE attention, SwiGLU experts).

  Attributes:
    architecture: "mixtral", "qwen2_moe" or "qwen3_moe" (the Hugging Face model_type).
    vocab_size, hidden_size (D), num_layers (L), num_heads (H), num_kv_heads (KV), head_dim (hd).
    num_experts (E), top_k: routed experts and experts per token.
    moe_intermediate_size: F, each routed expert's SwiGLU width.
    rope_theta: RoPE base. rms_norm_eps: RMSNorm epsilon.
    max_position_embeddings: kept for config.json; positions are not limited by it.
    attention_bias: q/k/v projections have a bias (Qwen2-MoE; Qwen3-MoE `attention_bias`).
    attention_out_bias: the output projection has a bias (Qwen3-MoE `attention_bias`).
    qk_norm: RMSNorm over head_dim on queries and keys before RoPE (Qwen3-MoE).
    norm_topk_prob: top-k routing weights renormalized to sum to 1 (Mixtral: always).
    shared_expert_intermediate_size: width Fs of the shared SwiGLU; 0 = no shared expert.
    shared_expert_gate: scale the shared output by sigmoid(x @ w) (Qwen2-MoE).
    intermediate_size: width of the dense SwiGLU of non-MoE layers (Qwen `mlp_only_layers`,
      `decoder_sparse_step`); unused when every layer is MoE.
    mlp_only_layers, decoder_sparse_step: layer i is MoE iff i not in mlp_only_layers and
      (i + 1) % decoder_sparse_step == 0 (transformers' rule).
    tie_word_embeddings: logits use the embedding table (no lm_head).
    dtype: compute dtype ("float32", "bfloat16", "float16"); logits and softmaxes are float32.
    attention_implementation: `jaxlab.ops.attention` implementation(s) ("xla", "cudnn",
      "pallas_triton", or a tuple tried in order); None: the best available. Not saved to config.json.
    moe_implementation: forwarded to `jaxlab.ops.grouped_matmul` (None = best available).
    expert_parallel: forwarded to `jaxlab.moe.MoEFeedForward`.
    router_aux_loss_coef: weight of the load-balancing loss in a training loss.
    bos_token_id, eos_token_id, pad_token_id: kept for config.json (eos may be several ids).
    generation_config: the checkpoint's generation_config.json (`GenerationSettings`; a dict is
      converted), written back by `save_pretrained`; None: no such file is written.
  """

  architecture: str
  vocab_size: int
  hidden_size: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  num_experts: int
  top_k: int
  moe_intermediate_size: int
  rope_theta: float = 10_000.0
  rms_norm_eps: float = 1e-6
  max_position_embeddings: int = 32768
  attention_bias: bool = False
  attention_out_bias: bool = False
  qk_norm: bool = False
  norm_topk_prob: bool = True
  shared_expert_intermediate_size: int = 0
  shared_expert_gate: bool = False
  intermediate_size: int = 0
  mlp_only_layers: tuple[int, ...] = ()
  decoder_sparse_step: int = 1
  tie_word_embeddings: bool = False
  dtype: str = "float32"
  attention_implementation: str | tuple[str, ...] | None = None
  moe_implementation: str | tuple[str, ...] | None = None
  expert_parallel: bool | str | None = None
  router_aux_loss_coef: float = 0.001
  bos_token_id: int | None = None
  eos_token_id: int | tuple[int, ...] | None = None
  pad_token_id: int | None = None
  generation_config: GenerationSettings | None = None

  def __post_init__(self):
    object.__setattr__(self, "attention_implementation", check_implementation(
        "MoELMConfig.attention_implementation", self.attention_implementation))
    if self.architecture not in ARCHITECTURES:
      raise ValueError(
          f"MoELMConfig.architecture={self.architecture!r} is not supported; supported: {ARCHITECTURES}"
      )
    positive = ("vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim", "num_experts",
                "top_k", "moe_intermediate_size", "decoder_sparse_step")
    for name in positive:
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"MoELMConfig.{name} must be a positive int, got {value!r}")
    for name in ("shared_expert_intermediate_size", "intermediate_size"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"MoELMConfig.{name} must be an int >= 0, got {value!r}")
    if self.num_heads % self.num_kv_heads:
      raise ValueError(
          f"MoELMConfig.num_heads={self.num_heads} must be a multiple of num_kv_heads={self.num_kv_heads}"
      )
    if self.head_dim % 2:
      raise ValueError(f"MoELMConfig.head_dim must be even for rotary embeddings, got {self.head_dim}")
    if self.top_k > self.num_experts:
      raise ValueError(f"MoELMConfig.top_k={self.top_k} exceeds num_experts={self.num_experts}")
    if self.shared_expert_gate and not self.shared_expert_intermediate_size:
      raise ValueError("MoELMConfig.shared_expert_gate needs shared_expert_intermediate_size > 0")
    if self.dtype not in COMPUTE_DTYPES:
      raise ValueError(f"MoELMConfig.dtype must be one of {COMPUTE_DTYPES}, got {self.dtype!r}")
    if not (isinstance(self.rope_theta, (int, float)) and self.rope_theta > 0):
      raise ValueError(f"MoELMConfig.rope_theta must be a positive number, got {self.rope_theta!r}")
    # A list would make the config unhashable (it is a static jit argument): store a sorted tuple.
    try:
      layers = tuple(sorted(int(i) for i in self.mlp_only_layers))
    except TypeError:
      raise TypeError(
          f"MoELMConfig.mlp_only_layers must be a sequence of layer indices, got {self.mlp_only_layers!r}"
      ) from None
    bad = [i for i in layers if not 0 <= i < self.num_layers]
    if bad:
      raise ValueError(f"MoELMConfig.mlp_only_layers has indices {bad} outside [0, {self.num_layers})")
    object.__setattr__(self, "mlp_only_layers", layers)
    if isinstance(self.moe_implementation, list):
      object.__setattr__(self, "moe_implementation", tuple(self.moe_implementation))
    for name, value in hf_generation.normalized_fields(self, "MoELMConfig").items():
      object.__setattr__(self, name, value)
    if not all(self.is_moe_layer(i) for i in range(self.num_layers)) and not self.intermediate_size:
      raise ValueError(
          "MoELMConfig has dense layers (mlp_only_layers / decoder_sparse_step) but intermediate_size=0"
      )

  def is_moe_layer(self, index: int) -> bool:
    """Layer `index` has routed experts (else a dense SwiGLU of width intermediate_size)."""
    return index not in self.mlp_only_layers and (index + 1) % self.decoder_sparse_step == 0

  @property
  def hf_model_class(self) -> str:
    """The transformers class name written to config.json `architectures`."""
    return _HF_CLASS[self.architecture]

  @classmethod
  def from_hf_dict(cls, d: Mapping[str, Any], **overrides) -> MoELMConfig:
    """The config of a Hugging Face `config.json` dict; `overrides` set jaxlab-only fields (dtype, generation_config, ...).

    Raises:
      ValueError: unsupported model_type (the message lists the supported ones), or a feature the
        jaxlab model does not implement (the message names the key).
    """
    if not isinstance(d, Mapping):
      raise TypeError(f"from_hf_dict needs a config.json dict, got {type(d).__name__}")
    arch = d.get("model_type")
    if arch not in ARCHITECTURES:
      raise ValueError(
          f"config.json model_type={arch!r} is not supported; supported model_type values: {ARCHITECTURES}"
      )
    _check_supported(d, arch)
    num_heads = hf_config.required_int(d, "num_attention_heads")
    hidden = hf_config.required_int(d, "hidden_size")
    fields: dict[str, Any] = dict(
        architecture=arch,
        vocab_size=hf_config.required_int(d, "vocab_size"),
        hidden_size=hidden,
        num_layers=hf_config.required_int(d, "num_hidden_layers"),
        num_heads=num_heads,
        num_kv_heads=d.get("num_key_value_heads") or num_heads,
        head_dim=d.get("head_dim") or hidden // num_heads,
        top_k=hf_config.required_int(d, "num_experts_per_tok"),
        rope_theta=hf_config.rope_theta(d, _DEFAULT_THETA[arch]),
        rms_norm_eps=float(d.get("rms_norm_eps", _DEFAULT_EPS[arch])),
        max_position_embeddings=int(d.get("max_position_embeddings", 32768)),
        tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
        router_aux_loss_coef=float(d.get("router_aux_loss_coef", 0.001)),
        **hf_generation.token_ids_from_hf(d, _DEFAULT_TOKEN_IDS.get(arch)),
    )
    dtype = d.get("dtype", d.get("torch_dtype"))
    if dtype in COMPUTE_DTYPES:
      fields["dtype"] = dtype
    if arch == "mixtral":
      fields.update(
          num_experts=hf_config.required_int(d, "num_local_experts"),
          moe_intermediate_size=hf_config.required_int(d, "intermediate_size"),
          norm_topk_prob=True,
      )
    else:
      shared = int(d.get("shared_expert_intermediate_size", 5632 if arch == "qwen2_moe" else 0) or 0)
      # transformers 5 writes Qwen3-MoE's expert count as num_local_experts (an alias of num_experts).
      experts_key = "num_experts" if d.get("num_experts") is not None else "num_local_experts"
      fields.update(
          num_experts=hf_config.required_int(d, experts_key),
          moe_intermediate_size=hf_config.required_int(d, "moe_intermediate_size"),
          norm_topk_prob=bool(d.get("norm_topk_prob", False)),
          intermediate_size=int(d.get("intermediate_size") or 0),
          mlp_only_layers=tuple(d.get("mlp_only_layers") or ()),
          decoder_sparse_step=int(d.get("decoder_sparse_step", 1)),
      )
      if arch == "qwen2_moe":
        fields.update(
            attention_bias=bool(d.get("qkv_bias", True)),
            shared_expert_intermediate_size=shared,
            shared_expert_gate=shared > 0,
        )
      else:
        bias = bool(d.get("attention_bias", False))
        fields.update(attention_bias=bias, attention_out_bias=bias, qk_norm=True)
    fields.update(overrides)
    return cls(**fields)

  def to_hf_dict(self) -> dict[str, Any]:
    """A config.json dict that transformers (4.x and 5.x) loads into the same model."""
    d: dict[str, Any] = dict(
        architectures=[self.hf_model_class],
        model_type=self.architecture,
        vocab_size=self.vocab_size,
        hidden_size=self.hidden_size,
        num_hidden_layers=self.num_layers,
        num_attention_heads=self.num_heads,
        num_key_value_heads=self.num_kv_heads,
        head_dim=self.head_dim,
        hidden_act="silu",
        num_experts_per_tok=self.top_k,
        rms_norm_eps=self.rms_norm_eps,
        max_position_embeddings=self.max_position_embeddings,
        tie_word_embeddings=self.tie_word_embeddings,
        router_aux_loss_coef=self.router_aux_loss_coef,
        # transformers 5 reads rope_parameters, 4.x reads rope_theta.
        rope_theta=self.rope_theta,
        rope_parameters={"rope_theta": self.rope_theta, "rope_type": "default"},
        attention_dropout=0.0,
        **hf_generation.token_ids_to_hf(self),
        dtype=self.dtype,
        torch_dtype=self.dtype,
    )
    if self.architecture == "mixtral":
      if self.attention_bias or self.attention_out_bias or self.qk_norm or not self.norm_topk_prob:
        raise ValueError(
            "a mixtral config has no attention bias or qk_norm and always renormalizes (norm_topk_prob)"
        )
      if self.shared_expert_intermediate_size or self.mlp_only_layers or self.decoder_sparse_step != 1:
        raise ValueError("a mixtral config has no shared expert and no dense layers")
      d.update(
          num_local_experts=self.num_experts, intermediate_size=self.moe_intermediate_size, sliding_window=None
      )
      return d
    d.update(
        num_experts=self.num_experts,
        moe_intermediate_size=self.moe_intermediate_size,
        norm_topk_prob=self.norm_topk_prob,
        intermediate_size=self.intermediate_size,
        mlp_only_layers=list(self.mlp_only_layers),
        decoder_sparse_step=self.decoder_sparse_step,
        use_sliding_window=False,
    )
    if self.architecture == "qwen2_moe":
      gated = bool(self.shared_expert_intermediate_size)
      if self.attention_out_bias or self.qk_norm or self.shared_expert_gate != gated:
        raise ValueError(
            "a qwen2_moe config has no output bias or qk_norm, and gates its shared expert iff it has one"
        )
      d.update(qkv_bias=self.attention_bias, shared_expert_intermediate_size=self.shared_expert_intermediate_size)
    else:
      one_bias = self.attention_bias == self.attention_out_bias
      if not self.qk_norm or not one_bias or self.shared_expert_intermediate_size:
        raise ValueError("a qwen3_moe config has qk_norm, one attention_bias for q/k/v/o and no shared expert")
      d.update(attention_bias=self.attention_bias)
    return d


def _check_supported(d: Mapping[str, Any], arch: str) -> None:
  """Raises ValueError naming the first config.json key that jaxlab would not compute as transformers does."""
  hf_config.check_supported(d, sliding_window_key="sliding_window" if arch == "mixtral" else "use_sliding_window")
  if d.get("num_experts", 1) == 0 and arch != "mixtral":
    raise ValueError("config.json num_experts=0 (a dense model) is not supported")

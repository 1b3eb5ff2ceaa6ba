"""`Qwen2Config`: the shape and numerics of a dense Qwen2 / Qwen2.5 decoder, and its config.json.

`from_hf_dict` reads a transformers `config.json` dict (4.x and 5.x spellings) and refuses, naming
the key, anything `Qwen2LM` would compute differently (scaled RoPE, sliding-window attention,
another activation). `to_hf_dict` writes a dict that transformers loads into `Qwen2ForCausalLM`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from jaxlab.models import hf_config, hf_generation
from jaxlab.models.hf_common import COMPUTE_DTYPES
from jaxlab.models.hf_generation import GenerationSettings
from jaxlab.ops.registry import check_implementation

MODEL_TYPE = "qwen2"
HF_MODEL_CLASS = "Qwen2ForCausalLM"
# transformers' Qwen2Config defaults for keys a config.json may leave out.
_DEFAULT_THETA = 10_000.0
_DEFAULT_EPS = 1e-6
_DEFAULT_MAX_POSITIONS = 32768


@dataclasses.dataclass(frozen=True)
class Qwen2Config:
  """A dense Qwen2 decoder LM: pre-norm, GQA attention with RoPE and q/k/v bias, SwiGLU MLP.

  Attributes:
    vocab_size: V. hidden_size: D. intermediate_size: I, the SwiGLU width.
    num_hidden_layers: L. num_attention_heads: H. num_key_value_heads: KV (None: H).
    head_dim: hd (None: hidden_size // num_attention_heads).
    rope_theta: RoPE base. rms_norm_eps: RMSNorm epsilon.
    max_position_embeddings: the longest sequence the model accepts (prompt + generated tokens).
    tie_word_embeddings: logits use the embedding table (no lm_head).
    attention_bias: q/k/v projections have a bias (always in Qwen2); the output projection never has one.
    bos_token_id, eos_token_id, pad_token_id: kept for config.json (eos may be several ids).
    dtype: compute dtype ("float32", "bfloat16", "float16"); logits and softmaxes are float32.
    attention_implementation: `jaxlab.ops.attention` implementation(s) to use ("xla", "cudnn",
      "pallas_triton", or a tuple tried in order); None: the best available. Not saved to config.json.
    generation_config: the checkpoint's generation_config.json (`GenerationSettings`; a dict is
      converted), written back by `save_pretrained`; None: no such file is written.
  """

  vocab_size: int
  hidden_size: int
  intermediate_size: int
  num_hidden_layers: int
  num_attention_heads: int
  num_key_value_heads: int | None = None
  head_dim: int | None = None
  rope_theta: float = _DEFAULT_THETA
  rms_norm_eps: float = _DEFAULT_EPS
  max_position_embeddings: int = _DEFAULT_MAX_POSITIONS
  tie_word_embeddings: bool = False
  attention_bias: bool = True
  bos_token_id: int | None = None
  eos_token_id: int | tuple[int, ...] | None = None
  dtype: str = "float32"
  attention_implementation: str | tuple[str, ...] | None = None
  pad_token_id: int | None = None
  generation_config: GenerationSettings | None = None

  def __post_init__(self):
    object.__setattr__(self, "attention_implementation",
                       check_implementation("Qwen2Config.attention_implementation", self.attention_implementation))
    for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "max_position_embeddings"):
      _check_positive_int(name, getattr(self, name))
    if self.num_key_value_heads is None:
      object.__setattr__(self, "num_key_value_heads", self.num_attention_heads)
    _check_positive_int("num_key_value_heads", self.num_key_value_heads)
    if self.head_dim is None:
      if self.hidden_size % self.num_attention_heads:
        raise ValueError(
            f"Qwen2Config.head_dim=None needs hidden_size={self.hidden_size} divisible by "
            f"num_attention_heads={self.num_attention_heads}; give head_dim"
        )
      object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)
    _check_positive_int("head_dim", self.head_dim)
    if self.head_dim % 2:
      raise ValueError(f"Qwen2Config.head_dim must be even for rotary embeddings, got {self.head_dim}")
    if self.num_attention_heads % self.num_key_value_heads:
      raise ValueError(
          f"Qwen2Config.num_attention_heads={self.num_attention_heads} must be a multiple of "
          f"num_key_value_heads={self.num_key_value_heads}"
      )
    if isinstance(self.rope_theta, bool) or not isinstance(self.rope_theta, (int, float)) or self.rope_theta <= 0:
      raise ValueError(f"Qwen2Config.rope_theta must be a positive number, got {self.rope_theta!r}")
    if isinstance(self.rms_norm_eps, bool) or not isinstance(self.rms_norm_eps, (int, float)) or self.rms_norm_eps < 0:
      raise ValueError(f"Qwen2Config.rms_norm_eps must be a number >= 0, got {self.rms_norm_eps!r}")
    if self.dtype not in COMPUTE_DTYPES:
      raise ValueError(f"Qwen2Config.dtype must be one of {COMPUTE_DTYPES}, got {self.dtype!r}")
    for name, value in hf_generation.normalized_fields(self, "Qwen2Config").items():
      object.__setattr__(self, name, value)

  @classmethod
  def from_hf_dict(cls, d: Mapping[str, Any], **overrides) -> Qwen2Config:
    """The config of a transformers Qwen2 `config.json` dict; `overrides` replace fields (dtype, ...).

    Raises:
      TypeError: `d` is not a mapping.
      ValueError: model_type is not "qwen2", a required key is missing, or the checkpoint uses a
        feature `Qwen2LM` does not implement (the message names the key and value).
    """
    if not isinstance(d, Mapping):
      raise TypeError(f"from_hf_dict needs a config.json dict, got {type(d).__name__}")
    if d.get("model_type") != MODEL_TYPE:
      raise ValueError(f"config.json model_type={d.get('model_type')!r} is not supported (only {MODEL_TYPE!r})")
    hf_config.check_supported(d, sliding_window_key="use_sliding_window")
    fields: dict[str, Any] = dict(
        vocab_size=hf_config.required_int(d, "vocab_size"),
        hidden_size=hf_config.required_int(d, "hidden_size"),
        intermediate_size=hf_config.required_int(d, "intermediate_size"),
        num_hidden_layers=hf_config.required_int(d, "num_hidden_layers"),
        num_attention_heads=hf_config.required_int(d, "num_attention_heads"),
        num_key_value_heads=d.get("num_key_value_heads"),
        head_dim=d.get("head_dim"),
        rope_theta=hf_config.rope_theta(d, _DEFAULT_THETA),
        rms_norm_eps=float(d.get("rms_norm_eps", _DEFAULT_EPS)),
        max_position_embeddings=int(d.get("max_position_embeddings", _DEFAULT_MAX_POSITIONS)),
        tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
        **hf_generation.token_ids_from_hf(d),
    )
    dtype = d.get("dtype", d.get("torch_dtype"))
    if dtype in COMPUTE_DTYPES:
      fields["dtype"] = dtype
    fields.update(overrides)
    return cls(**fields)

  def to_hf_dict(self) -> dict[str, Any]:
    """A config.json dict that transformers (4.x and 5.x) loads into an equivalent `Qwen2ForCausalLM`.

    Raises:
      ValueError: attention_bias=False (transformers' Qwen2 always has q/k/v bias).
    """
    if not self.attention_bias:
      raise ValueError("Qwen2Config.attention_bias=False has no transformers Qwen2 equivalent (q/k/v bias is fixed)")
    return dict(
        architectures=[HF_MODEL_CLASS],
        model_type=MODEL_TYPE,
        vocab_size=self.vocab_size,
        hidden_size=self.hidden_size,
        intermediate_size=self.intermediate_size,
        num_hidden_layers=self.num_hidden_layers,
        num_attention_heads=self.num_attention_heads,
        num_key_value_heads=self.num_key_value_heads,
        head_dim=self.head_dim,
        hidden_act="silu",
        rms_norm_eps=self.rms_norm_eps,
        max_position_embeddings=self.max_position_embeddings,
        tie_word_embeddings=self.tie_word_embeddings,
        # transformers 5 reads rope_parameters, 4.x reads rope_theta.
        rope_theta=self.rope_theta,
        rope_parameters={"rope_theta": self.rope_theta, "rope_type": "default"},
        rope_scaling=None,
        use_sliding_window=False,
        sliding_window=None,
        attention_dropout=0.0,
        **hf_generation.token_ids_to_hf(self),
        dtype=self.dtype,
        torch_dtype=self.dtype,
    )


def _check_positive_int(name: str, value) -> None:
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"Qwen2Config.{name} must be a positive int, got {value!r}")


"""`InternVLConfig`: the vision tower, projector and Qwen2 language model of an InternVL3-style model, and config.json.

`from_hf_dict` reads transformers' `InternVLConfig` dict (model_type "internvl") and refuses, naming
the key, whatever the jaxlab model would compute differently; `to_hf_dict` writes a dict that
transformers loads into `InternVLForConditionalGeneration`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from jaxlab.models.hf_generation import GenerationSettings
from jaxlab.models.qwen2.config import Qwen2Config
from jaxlab.vlm.projector import ProjectorConfig, shuffle_factor
from jaxlab.vlm.vision import InternVisionConfig

MODEL_TYPE = "internvl"
HF_MODEL_CLASS = "InternVLForConditionalGeneration"
VISION_MODEL_TYPE = "internvl_vision"
# transformers' InternVLConfig defaults.
_DEFAULT_IMAGE_TOKEN_ID = 151667
_DEFAULT_IMAGE_SEQ_LENGTH = 256


@dataclasses.dataclass(frozen=True)
class InternVLConfig:
  """An InternVL3-style vision-language model.

  Attributes:
    vision: the InternViT tower.
    projector: pixel shuffle ratio and MLP projector (vision width -> text width).
    text: the Qwen2 language model; its `tie_word_embeddings` is the model's (transformers 5 reads it
      from the top level of config.json), and so are its token ids and `generation_config` (the
      checkpoint's generation_config.json; transformers keeps the ids in text_config).
    image_token_id: id of `<IMG_CONTEXT>`; each such token's embedding is replaced by one image token.
    image_seq_length: tokens per tile the processor inserts (kept for config.json; the model derives the
      real count from the pixel shape).
  """

  vision: InternVisionConfig
  projector: ProjectorConfig
  text: Qwen2Config
  image_token_id: int = _DEFAULT_IMAGE_TOKEN_ID
  image_seq_length: int = _DEFAULT_IMAGE_SEQ_LENGTH

  def __post_init__(self) -> None:
    for name, cls in (("vision", InternVisionConfig), ("projector", ProjectorConfig), ("text", Qwen2Config)):
      if not isinstance(getattr(self, name), cls):
        raise TypeError(f"InternVLConfig.{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}")
    if self.projector.vision_hidden_size != self.vision.hidden_size:
      raise ValueError(f"projector.vision_hidden_size={self.projector.vision_hidden_size} != "
                       f"vision.hidden_size={self.vision.hidden_size}")
    if self.projector.text_hidden_size != self.text.hidden_size:
      raise ValueError(f"projector.text_hidden_size={self.projector.text_hidden_size} != "
                       f"text.hidden_size={self.text.hidden_size}")
    tid = self.image_token_id
    if isinstance(tid, bool) or not isinstance(tid, int) or not 0 <= tid < self.text.vocab_size:
      raise ValueError(f"InternVLConfig.image_token_id must be a token id in [0, {self.text.vocab_size}), got {tid!r}")
    seq = self.image_seq_length
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
      raise ValueError(f"InternVLConfig.image_seq_length must be a positive int, got {seq!r}")

  @property
  def generation_config(self) -> GenerationSettings | None:
    """The model's generation_config.json settings, kept on the language model's config."""
    return self.text.generation_config

  def tokens_per_tile(self, height: int, width: int) -> int:
    """Image tokens one [height, width] tile becomes: (H / patch / k) * (W / patch / k)."""
    k = shuffle_factor(self.projector.downsample_ratio)
    (ph, pw) = self.vision.patch_size
    return (height // ph // k) * (width // pw // k)

  @classmethod
  def from_hf_dict(cls, d: Mapping[str, Any], **text_overrides) -> InternVLConfig:
    """The config of a transformers `InternVLConfig` dict; `text_overrides` replace Qwen2Config fields (dtype, ...).

    Tied embeddings: the top-level `tie_word_embeddings` when present (transformers 5), else text_config's.

    Raises:
      TypeError: `d` is not a mapping.
      ValueError: model_type is not "internvl", a missing sub-config, or an unsupported option of the
        vision tower, projector or language model (the key named).
    """
    if not isinstance(d, Mapping):
      raise TypeError(f"from_hf_dict needs a config.json dict, got {type(d).__name__}")
    if d.get("model_type") != MODEL_TYPE:
      raise ValueError(f"config.json model_type={d.get('model_type')!r} is not supported (only {MODEL_TYPE!r})")
    text_d = d.get("text_config")
    if not isinstance(text_d, Mapping):
      raise ValueError(f"InternVL config.json needs a text_config dict, got text_config={text_d!r}")
    text_d = dict(text_d)
    text_d.setdefault("model_type", "qwen2")
    if text_d["model_type"] != "qwen2":
      raise ValueError(f"config.json text_config.model_type={text_d['model_type']!r} is not supported (only 'qwen2')")
    tied = d.get("tie_word_embeddings", text_d.get("tie_word_embeddings", False))
    overrides = dict(tie_word_embeddings=bool(tied))
    dtype = d.get("dtype", d.get("torch_dtype"))
    if dtype is not None and "dtype" not in text_d and "torch_dtype" not in text_d:
      text_d["dtype"] = dtype
    overrides.update(text_overrides)
    return cls(
        vision=InternVisionConfig.from_hf_dict(d),
        projector=ProjectorConfig.from_hf_dict(d),
        text=Qwen2Config.from_hf_dict(text_d, **overrides),
        image_token_id=d.get("image_token_id", _DEFAULT_IMAGE_TOKEN_ID),
        image_seq_length=d.get("image_seq_length", _DEFAULT_IMAGE_SEQ_LENGTH),
    )

  def to_hf_dict(self) -> dict[str, Any]:
    """A config.json dict that transformers loads into an equivalent `InternVLForConditionalGeneration`."""
    vision = {f.name: getattr(self.vision, f.name) for f in dataclasses.fields(InternVisionConfig)
              if f.name != "attention_implementation"}
    vision.update(model_type=VISION_MODEL_TYPE, image_size=list(self.vision.image_size),
                  patch_size=list(self.vision.patch_size), use_mask_token=False)
    text = self.text.to_hf_dict()
    text.pop("architectures", None)
    p = self.projector
    return dict(
        architectures=[HF_MODEL_CLASS],
        model_type=MODEL_TYPE,
        vision_config=vision,
        text_config=text,
        image_token_id=self.image_token_id,
        image_seq_length=self.image_seq_length,
        downsample_ratio=p.downsample_ratio,
        projector_hidden_act=p.projector_hidden_act,
        vision_feature_layer=p.vision_feature_layer,
        vision_feature_select_strategy=p.vision_feature_select_strategy,
        tie_word_embeddings=self.text.tie_word_embeddings,
        dtype=self.text.dtype,
        torch_dtype=self.text.dtype,
    )

"""Captions for GenDoP: a BPE caption tokenizer trained here and `TextEncoder`, the text tower.

GenDoP reads captions with the CLIP text encoder of Stable Diffusion 2.1 (77 tokens, 1024 wide). No
weights can be fetched offline, so this module trains its own byte-pair vocabulary on the captions at
hand and encodes them with a small CLIP-like transformer trained with the rest of the model:

- `train_caption_tokenizer`: a `tokenizers` BPE (NFKC, lower case, whitespace/punctuation split)
  whose special tokens are [PAD] = 0, [UNK] = 1, [SOT] = 2, [EOT] = 3.
- `encode_captions`: [SOT] caption [EOT], right padded with [PAD] to 77 ids per caption. A caption
  that does not fit is an error naming it, never a silent cut (unless `truncate=True`).
- `TextEncoder`: token and learned position embeddings, pre-LN layers with causal attention (as
  CLIP's text encoder: a token sees only the tokens before it, so the padding after [EOT] changes
  nothing before it) and a final LayerNorm, returning every position [B, 77, width].
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import tokenizers
from tokenizers import models, normalizers, pre_tokenizers, trainers

from jaxlab import _compat, ops
from jaxlab.nn import Dense, GeluMLP, LayerNorm, dot_product_attention
from jaxlab.sharding import axes
from jaxlab.sharding.annotate import constrain, param_with_axes

# Special tokens in id order: training assigns them ids 0..3 before any merge.
_SPECIALS = ("[PAD]", "[UNK]", "[SOT]", "[EOT]")
_PAD, _SOT, _EOT = 0, 2, 3
_BSE = (axes.BATCH, axes.SEQ, axes.EMBED)


def _caption_list(texts, caller: str) -> list[str]:
  """`texts` as a non-empty list of strings, or a ValueError naming `caller` and the problem."""
  if isinstance(texts, str):
    raise ValueError(f"{caller} needs a sequence of captions, got a single string")
  texts = list(texts)
  if not texts:
    raise ValueError(f"{caller} needs at least one caption, got none")
  bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
  if bad:
    raise ValueError(f"captions must be strings; caption {bad[0]} is {type(texts[bad[0]]).__name__}")
  return texts


def train_caption_tokenizer(texts: Iterable[str], vocab_size: int = 2000) -> tokenizers.Tokenizer:
  """A BPE tokenizer trained on `texts`, with [PAD] = 0, [UNK] = 1, [SOT] = 2, [EOT] = 3.

  Text is NFKC-normalized and lower-cased, then split on whitespace and punctuation before the
  merges. The vocabulary holds at most `vocab_size` entries (fewer when the captions are few);
  characters never seen in training become [UNK]. Training is deterministic for given texts.

  Raises:
    ValueError: no texts, a text that is not a string, or vocab_size below the special tokens + 1.
  """
  texts = _caption_list(texts, "train_caption_tokenizer")
  if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= len(_SPECIALS):
    raise ValueError(f"vocab_size must be an int > {len(_SPECIALS)}, got {vocab_size!r}")
  tokenizer = tokenizers.Tokenizer(models.BPE(unk_token="[UNK]"))
  tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
  tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
  trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(_SPECIALS), show_progress=False)
  tokenizer.train_from_iterator(texts, trainer=trainer)
  return tokenizer


def _check_special_ids(tokenizer: tokenizers.Tokenizer) -> None:
  """Raises unless the tokenizer's special tokens sit at the ids this module writes."""
  for expected, token in enumerate(_SPECIALS):
    got = tokenizer.token_to_id(token)
    if got != expected:
      raise ValueError(f"caption tokenizer has {token} at id {got}, expected {expected}; "
                       "build it with train_caption_tokenizer")


def encode_captions(tokenizer: tokenizers.Tokenizer, texts: Sequence[str], length: int = 77, *,
                    truncate: bool = False) -> np.ndarray:
  """Caption ids int32 [B, length]: [SOT] caption [EOT], then [PAD] (0) to `length`.

  Args:
    tokenizer: from `train_caption_tokenizer`.
    texts: B captions.
    length: ids per caption, markers included (77, CLIP's context).
    truncate: False (default): a caption longer than `length` with its markers is an error.
      True: keep its first `length - 1` ids and end it with [EOT] (the end marker always stays).

  Raises:
    ValueError: a caption too long (naming its index, its token count and its start), no
      captions, a non-string caption, a bad length, or a tokenizer with other special ids.
  """
  texts = _caption_list(texts, "encode_captions")
  if isinstance(length, bool) or not isinstance(length, int) or length < 2:
    raise ValueError(f"length must be an int >= 2 (room for [SOT] and [EOT]), got {length!r}")
  _check_special_ids(tokenizer)
  ids_bl = np.full((len(texts), length), _PAD, np.int32)
  for i, encoding in enumerate(tokenizer.encode_batch(texts, add_special_tokens=False)):
    ids = [_SOT, *encoding.ids, _EOT]
    if len(ids) > length:
      if not truncate:
        start = texts[i] if len(texts[i]) <= 60 else texts[i][:57] + "..."
        raise ValueError(f"caption {i} ({start!r}) has {len(ids)} tokens with its start and end markers, "
                         f"more than length={length}; shorten it or pass truncate=True")
      ids = ids[:length - 1] + [_EOT]
    ids_bl[i, :len(ids)] = ids
  return ids_bl


class _TextAttention(nn.Module):
  """Causal multi-head self-attention: q/k/v/o `Dense` layers with biases, scores in float32."""

  num_heads: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  implementation: str | tuple[str, ...] | None = None

  @nn.compact
  def __call__(self, x_btd: jax.Array) -> jax.Array:
    b, t, d = x_btd.shape
    h = self.num_heads
    dense = lambda name, n, kernel_axes: Dense(n, kernel_axes, dtype=self.dtype, param_dtype=self.param_dtype,
                                               name=name)
    q_bthk, k_bthk, v_bthk = (dense(name, d, (axes.EMBED, axes.HEADS))(x_btd).reshape(b, t, h, d // h)
                              for name in ("q", "k", "v"))
    q_bthk = constrain(q_bthk, (axes.BATCH, axes.SEQ, axes.HEADS, axes.HEAD_DIM))
    out_bthk = dot_product_attention(q_bthk, k_bthk, v_bthk, ops.AttentionMask(causal=True),
                                     implementation=self.implementation)
    return dense("o", d, (axes.HEADS, axes.EMBED))(out_bthk.reshape(b, t, d))


class _TextLayer(nn.Module):
  """Pre-LN block: x + attention(LN(x)), then x + GELU MLP(LN(x))."""

  num_heads: int
  mlp_ratio: int
  eps: float
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  implementation: str | tuple[str, ...] | None = None

  @nn.compact
  def __call__(self, x_btd: jax.Array) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    norm = lambda name: LayerNorm(eps=self.eps, param_dtype=self.param_dtype, name=name)
    x_btd = x_btd + _TextAttention(self.num_heads, implementation=self.implementation, name="attention", **kw)(
        norm("attention_norm")(x_btd))
    x_btd = constrain(x_btd, _BSE)
    mlp = GeluMLP(self.mlp_ratio * x_btd.shape[-1], name="mlp", **kw)
    return constrain(x_btd + mlp(norm("mlp_norm")(x_btd)), _BSE)


class TextEncoder(nn.Module):
  """Caption ids [B, L] (L <= `length`, from `encode_captions`) -> features [B, L, width] in `dtype`.

  The stand-in for CLIP's text encoder (see the module docstring). Params: token_embedding
  [vocab_size, width] (vocab, embed), position_embedding [length, width], layers_{i} (attention
  q/k/v/o and a GELU MLP of `mlp_ratio` x width, each with its LayerNorm), final_norm.
  """

  vocab_size: int = 2000
  length: int = 77
  width: int = 512
  num_layers: int = 4
  num_heads: int = 8
  mlp_ratio: int = 4
  eps: float = 1e-5
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  attention_implementation: str | tuple[str, ...] | None = None

  @nn.compact
  def __call__(self, text_ids_bl: jax.Array) -> jax.Array:
    shape = tuple(np.shape(text_ids_bl))
    if len(shape) != 2 or not 1 <= shape[1] <= self.length:
      raise ValueError(f"TextEncoder: text ids must be [B, L] with 1 <= L <= {self.length}, got shape {shape}")
    if not jnp.issubdtype(jnp.asarray(text_ids_bl).dtype, jnp.integer):
      raise ValueError(f"TextEncoder: text ids must be integers, got {jnp.asarray(text_ids_bl).dtype}")
    if self.width % self.num_heads:
      raise ValueError(f"TextEncoder: width {self.width} is not divisible by num_heads {self.num_heads}")
    if not isinstance(text_ids_bl, _compat.Tracer):
      ids = np.asarray(text_ids_bl)
      if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
        raise ValueError(f"TextEncoder: caption ids must lie in [0, {self.vocab_size}), "
                         f"got [{ids.min()}, {ids.max()}]")
    tokens_vd = self.param("token_embedding", param_with_axes(nn.initializers.normal(0.02), (axes.VOCAB, axes.EMBED)),
                           (self.vocab_size, self.width), self.param_dtype)
    positions_ld = self.param("position_embedding", param_with_axes(nn.initializers.normal(0.01), (None, axes.EMBED)),
                              (self.length, self.width), self.param_dtype)
    # Whole rows of the table at each lookup (see `jaxlab.nn.Embed`).
    tokens_vd = constrain(tokens_vd, (axes.VOCAB, None))
    x_bld = jnp.take(tokens_vd, text_ids_bl, axis=0) + positions_ld[:shape[1]]
    x_bld = constrain(x_bld.astype(self.dtype), _BSE)
    for i in range(self.num_layers):
      x_bld = _TextLayer(self.num_heads, self.mlp_ratio, self.eps, dtype=self.dtype, param_dtype=self.param_dtype,
                         implementation=self.attention_implementation, name=f"layers_{i}")(x_bld)
    return LayerNorm(eps=self.eps, param_dtype=self.param_dtype, name="final_norm")(x_bld)

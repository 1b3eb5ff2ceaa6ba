"""The flash-attention kernels lower through Triton for CUDA, checked on a machine without a GPU.

Lowering (not compiling) for the "cuda" platform runs Pallas' Triton lowering, which rejects
what Triton cannot express (tiles whose size is not a power of two, dots smaller than 16,
dynamic shapes). Interpret-mode tests cannot catch that: the interpreter accepts any shape.
"""

import jax
import jax.numpy as jnp
import pytest

from kernels_pallas.attention.config import FlashBlockConfig
from jaxlab.ops.attention_op.mask import AttentionMask, normalize, visible_ts
from kernels_pallas.attention import triton as attention_triton

KERNEL_NAMES = ("flash_attention_forward", "flash_attention_backward_dkv", "flash_attention_backward_dq")


def _lower_for_cuda(fn, *specs) -> str:
  return jax.jit(fn).trace(*specs).lower(lowering_platforms=("cuda",)).as_text()


def _forward_and_backward(b, t, s, h, kv, d, dtype, make_mask, mask_specs, *, logit_soft_cap=None, config=None):
  """HLO text of out, lse and (dq, dk, dv) for cotangents on both out and lse."""
  config = config or FlashBlockConfig.heuristic(t, s, d)

  def run(q, k, v, dout, dlse, *mask_arrays):
    mask = normalize(make_mask(*mask_arrays), b, h, t, s)
    attend = lambda q, k, v: attention_triton.flash_attention(
        q, k, v, mask, visible_fn=visible_ts, scale=d**-0.5, logit_soft_cap=logit_soft_cap, config=config,
        interpret=False,
    )
    (out, lse), vjp = jax.vjp(attend, q, k, v)
    return out, lse, vjp((dout, dlse))

  q = jax.ShapeDtypeStruct((b, t, h, d), dtype)
  k = jax.ShapeDtypeStruct((b, s, kv, d), dtype)
  lse = jax.ShapeDtypeStruct((b, t, h), jnp.float32)
  return _lower_for_cuda(run, q, k, k, q, lse, *mask_specs)


def _assert_three_kernels(text: str):
  assert text.count("xla.gpu.triton") == 3
  for name in KERNEL_NAMES:
    assert name in text


def test_causal_gqa_bf16_lowers_without_a_score_matrix():
  text = _forward_and_backward(2, 1000, 1000, 8, 2, 128, jnp.bfloat16, lambda: AttentionMask(causal=True), ())
  _assert_three_kernels(text)
  assert "1000x1000" not in text  # Nothing [T, S] outside the kernels.


def test_segment_ids_and_explicit_mask_lower():
  b, t, s, h = 2, 1000, 1000, 4
  specs = (
      jax.ShapeDtypeStruct((b, t), jnp.int32),
      jax.ShapeDtypeStruct((b, s), jnp.int32),
      jax.ShapeDtypeStruct((b, h, t, s), jnp.bool_),
  )
  make_mask = lambda q_ids, kv_ids, explicit: AttentionMask(
      causal=True, q_segment_ids=q_ids, kv_segment_ids=kv_ids, explicit=explicit)
  _assert_three_kernels(_forward_and_backward(b, t, s, h, 2, 128, jnp.bfloat16, make_mask, specs))


@pytest.mark.parametrize(
    "t, s, h, kv, d, dtype, soft_cap",
    [
        (1, 37, 4, 1, 256, jnp.float16, None),
        (33, 200, 2, 2, 16, jnp.float32, 30.0),
        (7, 7, 2, 1, 64, jnp.bfloat16, 5.0),
    ],
)
def test_every_mask_part_and_small_shapes_lower(t, s, h, kv, d, dtype, soft_cap):
  b = 2
  specs = (
      jax.ShapeDtypeStruct((b,), jnp.int32),
      jax.ShapeDtypeStruct((b,), jnp.int32),
      jax.ShapeDtypeStruct((b,), jnp.int32),
      jax.ShapeDtypeStruct((t, s), jnp.bool_),
  )
  make_mask = lambda q_offset, prefix, kv_length, explicit: AttentionMask(
      causal=True, sliding_window=16, q_offset=q_offset, prefix_length=prefix, kv_length=kv_length,
      explicit=explicit)
  text = _forward_and_backward(b, t, s, h, kv, d, dtype, make_mask, specs, logit_soft_cap=soft_cap)
  _assert_three_kernels(text)


def test_bidirectional_window_with_large_blocks_lowers():
  config = FlashBlockConfig(block_q=128, block_k=64, block_q_dkv=64, block_k_dkv=128, num_warps=8, num_stages=3)
  make_mask = lambda: AttentionMask(sliding_window=100)
  _assert_three_kernels(_forward_and_backward(1, 300, 500, 2, 1, 64, jnp.bfloat16, make_mask, (), config=config))


def test_vmapped_kernels_lower():
  b, t, s, h, d = 1, 40, 40, 2, 32
  config = FlashBlockConfig.heuristic(t, s, d)
  q = jax.ShapeDtypeStruct((3, b, t, h, d), jnp.bfloat16)

  def loss(q, k, v):
    def one(q, k, v):
      mask = normalize(AttentionMask(causal=True), b, h, t, s)
      out, lse = attention_triton.flash_attention(
          q, k, v, mask, visible_fn=visible_ts, scale=0.2, logit_soft_cap=None, config=config, interpret=False)
      return jnp.sum(out.astype(jnp.float32)) + jnp.sum(lse)
    return jnp.sum(jax.vmap(one)(q, k, v))

  _assert_three_kernels(_lower_for_cuda(jax.grad(loss, argnums=(0, 1, 2)), q, q, q))

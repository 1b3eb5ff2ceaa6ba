"""The Pallas flash-attention kernels, run in the Pallas interpreter, against the XLA reference.

Values, log-sum-exp and gradients of q, k and v (through a loss that also uses the lse, as
ring attention does) for every part of the mask, GQA, odd lengths and several head dims.
Shapes are tiny and blocks 16 so that one case is a handful of tiles: the interpreter is
slow, and each case costs one compile of forward plus backward.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.ops.attention_op.api import attention
from kernels_pallas.attention.config import FlashBlockConfig
from jaxlab.ops.attention_op.mask import AttentionMask
from jaxlab.testing import assert_close

BLOCKS = FlashBlockConfig(block_q=16, block_k=16, block_q_dkv=16, block_k_dkv=16)


@dataclasses.dataclass(frozen=True)
class Case:
  b: int = 2
  t: int = 33
  s: int = 33
  h: int = 2
  kv: int = 1
  d: int = 16
  dtype: type = jnp.float32
  mask: object = None  # (rng, case) -> AttentionMask | None
  scale: float | None = None
  logit_soft_cap: float | None = None


def _segments(length: int, lengths: list[int]) -> np.ndarray:
  """Packed segment ids: consecutive runs of the given lengths, then padding id -1."""
  ids = np.full(length, -1, np.int32)
  start = 0
  for segment, n in enumerate(lengths):
    ids[start:start + n] = segment
    start += n
  return ids


def _segment_mask(rng, c):
  q_ids = np.stack([_segments(c.t, [10, 20, 3]), _segments(c.t, [1, 30])])
  return AttentionMask(causal=True, q_segment_ids=q_ids, kv_segment_ids=q_ids.copy())


def _fully_masked(rng, c):
  # Row 0 sees nothing (kv_length 0); in row 1, queries 4 and 30 see nothing (explicit).
  explicit = rng.random((c.b, 1, c.t, c.s)) < 0.8
  explicit[1, :, [4, 30], :] = False
  return AttentionMask(kv_length=np.array([0, 20]), explicit=explicit)


CASES = {
    "full-gqa2-d64": Case(t=7, s=33, h=4, kv=2, d=64),
    "causal-gqa4": Case(b=1, h=4, kv=1, mask=lambda rng, c: AttentionMask(causal=True)),
    "causal-decode-t1": Case(t=1, s=37, mask=lambda rng, c: AttentionMask(causal=True)),
    "causal-decode-t3-offsets": Case(
        t=3, s=37, kv=2, mask=lambda rng, c: AttentionMask(causal=True, q_offset=np.array([34, 9]))),
    "sliding-window-causal": Case(t=40, s=40, mask=lambda rng, c: AttentionMask(causal=True, sliding_window=7)),
    "sliding-window-both-sides-f16": Case(
        t=20, s=37, dtype=jnp.float16,
        mask=lambda rng, c: AttentionMask(sliding_window=9, q_offset=np.array([5, 17]))),
    "prefix-lm": Case(t=35, s=35, mask=lambda rng, c: AttentionMask(causal=True, prefix_length=np.array([5, 21]))),
    "segments-packed": Case(mask=_segment_mask),
    "kv-length": Case(t=13, s=37, mask=lambda rng, c: AttentionMask(kv_length=np.array([37, 9]))),
    "explicit-bhts": Case(t=17, s=31, h=4, kv=2, mask=lambda rng, c: AttentionMask(
        explicit=rng.random((c.b, c.h, c.t, c.s)) < 0.6)),
    "explicit-ts-causal": Case(t=21, s=21, mask=lambda rng, c: AttentionMask(
        causal=True, explicit=rng.random((c.t, c.s)) < 0.7)),
    "soft-cap-d64": Case(t=19, s=26, d=64, scale=0.5, logit_soft_cap=3.0,
                         mask=lambda rng, c: AttentionMask(causal=True)),
    "causal-mha-d128": Case(t=19, s=19, h=2, kv=2, d=128, mask=lambda rng, c: AttentionMask(causal=True)),
    "bf16-segments-gqa4-d64": Case(h=4, kv=1, d=64, dtype=jnp.bfloat16, mask=_segment_mask),
    "fully-masked-rows": Case(t=33, s=37, mask=_fully_masked),
}


def _inputs(c: Case, seed: int = 0):
  """q, k, v, the loss weights w (for out) and u (for lse), and the mask; drawn with NumPy."""
  rng = np.random.default_rng(seed)
  draw = lambda *shape: rng.standard_normal(shape).astype(np.float32)
  q, w = draw(c.b, c.t, c.h, c.d), draw(c.b, c.t, c.h, c.d)
  k, v = draw(c.b, c.s, c.kv, c.d), draw(c.b, c.s, c.kv, c.d)
  u = draw(c.b, c.t, c.h)
  mask = None if c.mask is None else c.mask(rng, c)
  arrays = tuple(jnp.asarray(a, c.dtype) for a in (q, k, v)) + (jnp.asarray(w), jnp.asarray(u))
  return arrays, mask


def _run(implementation: str, c: Case, q, k, v, w, u, mask):
  """(out, lse, dq, dk, dv) of loss = sum(out * w) + sum(lse * u over finite lse), jitted once."""

  def loss(q, k, v, mask):
    out, lse = attention(
        q, k, v, mask, scale=c.scale, logit_soft_cap=c.logit_soft_cap, return_lse=True,
        implementation=implementation, interpret=True, block_config=BLOCKS,
    )
    value = jnp.sum(out.astype(jnp.float32) * w) + jnp.sum(jnp.where(jnp.isfinite(lse), lse * u, 0.0))
    return value, (out, lse)

  grad_fn = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)
  (_, (out, lse)), grads = jax.jit(grad_fn)(q, k, v, mask)
  return (out, lse, *grads)


@functools.cache
def _results(name: str, implementation: str):
  """`_run` on case `name`'s inputs, computed once per module (two tests share a case)."""
  c = CASES[name]
  (q, k, v, w, u), mask = _inputs(c)
  return _run(implementation, c, q, k, v, w, u, mask)


@pytest.mark.parametrize("name", list(CASES))
def test_matches_reference(name):
  c = CASES[name]
  q = _inputs(c)[0][0]
  out, lse, dq, dk, dv = _results(name, "pallas_triton")
  ref_out, ref_lse, ref_dq, ref_dk, ref_dv = _results(name, "xla")

  assert out.dtype == q.dtype and lse.dtype == jnp.float32 and lse.shape == (c.b, c.t, c.h)
  assert_close(out, ref_out, c.dtype, f"{name}: out")
  finite = np.isfinite(np.asarray(ref_lse))
  np.testing.assert_array_equal(np.isfinite(np.asarray(lse)), finite, err_msg=f"{name}: rows that see no key")
  assert np.all(np.asarray(lse)[~finite] == -np.inf), f"{name}: lse of a row that sees no key"
  assert_close(np.where(finite, lse, 0.0), np.where(finite, ref_lse, 0.0), jnp.float32, f"{name}: lse")
  # Low-precision gradients: the kernels round p and ds to the input dtype before their dots,
  # the reference differentiates its own roundings; both are within a couple of ulps.
  for what, grad, ref_grad in (("dq", dq, ref_dq), ("dk", dk, ref_dk), ("dv", dv, ref_dv)):
    assert grad.dtype == ref_grad.dtype and grad.shape == ref_grad.shape
    assert np.all(np.isfinite(np.asarray(grad, np.float32))), f"{name}: {what} not finite"
    assert_close(grad, ref_grad, c.dtype, f"{name}: {what}", atol_scale=1.0 if c.dtype == jnp.float32 else 2.0)


def test_fully_masked_rows_give_zeros_and_no_gradient():
  out, lse, dq, _, _ = _results("fully-masked-rows", "pallas_triton")
  for rows in (np.s_[0], np.s_[1, [4, 30]]):
    assert np.all(np.asarray(out)[rows] == 0.0)
    assert np.all(np.asarray(lse)[rows] == -np.inf)
    assert np.all(np.asarray(dq)[rows] == 0.0)


def test_packed_sequences_never_attend_across_segments():
  """Changing segment 0's keys and values leaves segment 1's outputs bit-identical, and back."""
  t = 32
  ids = np.array([[0] * 12 + [1] * 20], np.int32)
  mask = AttentionMask(causal=True, q_segment_ids=ids, kv_segment_ids=ids)
  rng = np.random.default_rng(1)
  draw = lambda *shape: jnp.asarray(rng.standard_normal(shape), jnp.float32)
  q, k, v = draw(1, t, 2, 16), draw(1, t, 1, 16), draw(1, t, 1, 16)
  run = jax.jit(lambda q, k, v, mask: attention(
      q, k, v, mask, implementation="pallas_triton", interpret=True, block_config=BLOCKS))
  base = np.asarray(run(q, k, v, mask))
  for changed, kept in ((np.s_[:, :12], np.s_[:, 12:]), (np.s_[:, 12:], np.s_[:, :12])):
    noise_k, noise_v = 10.0 * draw(1, t, 1, 16), 10.0 * draw(1, t, 1, 16)
    perturbed = np.asarray(run(q, k.at[changed].add(noise_k[changed]), v.at[changed].add(noise_v[changed]), mask))
    np.testing.assert_array_equal(perturbed[kept], base[kept])
    assert not np.allclose(perturbed[changed], base[changed])

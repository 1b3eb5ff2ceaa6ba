"""Tests for `jaxlab.ops.attention`: the XLA reference against a float64 NumPy loop, the mask
rule for every mask kind, the decode form, dispatch and argument checks.

The Pallas kernel is compared with the reference in tests/kernels_pallas (interpret mode).
"""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab import ops
from jaxlab.ops.attention_op import api
from jaxlab.ops.attention_op.mask import AttentionMask


def _qkv(b, t, s, h, kv, d, seed=0, dtype=np.float32):
  rng = np.random.default_rng(seed)
  q = rng.standard_normal((b, t, h, d)) * 1.5
  k = rng.standard_normal((b, s, kv, d))
  v = rng.standard_normal((b, s, kv, d))
  return tuple(jnp.asarray(a.astype(dtype)) for a in (q, k, v))


def _numpy_attention(q, k, v, visible, scale, cap=None):
  """Float64 loop over rows and heads; `visible(b, h, t, s) -> bool` written out per case."""
  q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
  b, t, h, d = q.shape
  s, kv = k.shape[1], k.shape[2]
  out = np.zeros((b, t, h, d))
  lse = np.full((b, t, h), -np.inf)
  for bi in range(b):
    for hi in range(h):
      kh = hi // (h // kv)
      for ti in range(t):
        keys = [si for si in range(s) if visible(bi, hi, ti, si)]
        if not keys:
          continue
        x = np.array([q[bi, ti, hi] @ k[bi, si, kh] for si in keys]) * scale
        if cap is not None:
          x = cap * np.tanh(x / cap)
        m = x.max()
        w = np.exp(x - m)
        out[bi, ti, hi] = (w[:, None] * v[bi, keys, kh]).sum(0) / w.sum()
        lse[bi, ti, hi] = m + np.log(w.sum())
  return out, lse


B, T, S, H, KV, D = 2, 6, 9, 4, 2, 8
_RNG = np.random.default_rng(7)
_EXPLICIT = _RNG.random((B, H, T, S)) < 0.6
_Q_SEG = np.array([[0, 0, 1, 1, 1, 2], [0, 0, 0, 0, 1, 1]])
_KV_SEG = np.array([[0, 0, 0, 1, 1, 1, 1, 2, 2], [0, 0, 0, 1, 1, 1, 1, 1, 1]])

# (id, mask, scale, cap, visible(b, h, t, s) spelled out independently of jaxlab's rule).
# The default q_offset is S - T = 3: query t sits at key position t + 3.
MASK_CASES = [
    ("full", AttentionMask(), None, None, lambda b, h, t, s: True),
    ("causal", AttentionMask(causal=True), None, None, lambda b, h, t, s: s <= t + 3),
    ("causal-offset0", AttentionMask(causal=True, q_offset=0), None, None, lambda b, h, t, s: s <= t),
    ("causal-offset-per-row", AttentionMask(causal=True, q_offset=np.array([1, -2])), None, None,
     lambda b, h, t, s: s <= t + (1 if b == 0 else -2)),
    ("window3", AttentionMask(causal=True, sliding_window=3), None, None, lambda b, h, t, s: t + 1 <= s <= t + 3),
    ("window2-bidirectional", AttentionMask(sliding_window=2), None, None, lambda b, h, t, s: abs(s - t - 3) < 2),
    ("prefix-lm", AttentionMask(causal=True, q_offset=0, prefix_length=np.array([4, 1])), None, None,
     lambda b, h, t, s: s <= t or s < (4 if b == 0 else 1)),
    ("kv-length", AttentionMask(kv_length=np.array([5, 9])), None, None, lambda b, h, t, s: s < (5 if b == 0 else 9)),
    ("segments", AttentionMask(q_segment_ids=_Q_SEG, kv_segment_ids=_KV_SEG), None, None,
     lambda b, h, t, s: _Q_SEG[b, t] == _KV_SEG[b, s]),
    ("explicit-bhts", AttentionMask(explicit=_EXPLICIT), None, None, lambda b, h, t, s: _EXPLICIT[b, h, t, s]),
    ("explicit-ts", AttentionMask(explicit=_EXPLICIT[0, 0]), None, None, lambda b, h, t, s: _EXPLICIT[0, 0, t, s]),
    ("causal-segments-softcap-scale", AttentionMask(causal=True, q_segment_ids=_Q_SEG, kv_segment_ids=_KV_SEG),
     0.7, 2.0, lambda b, h, t, s: s <= t + 3 and _Q_SEG[b, t] == _KV_SEG[b, s]),
]


@pytest.mark.parametrize("mask, scale, cap, visible", [pytest.param(*c[1:], id=c[0]) for c in MASK_CASES])
def test_reference_matches_float64_loop_for_every_mask_kind(mask, scale, cap, visible):
  q, k, v = _qkv(B, T, S, H, KV, D)
  out, lse = jax.jit(lambda q, k, v: ops.attention(q, k, v, mask, scale=scale, logit_soft_cap=cap,
                                                   return_lse=True, implementation="xla"))(q, k, v)
  want_out, want_lse = _numpy_attention(q, k, v, visible, D**-0.5 if scale is None else scale, cap)
  np.testing.assert_allclose(np.asarray(out), want_out, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(np.isinf(lse), np.isinf(want_lse))
  finite = np.isfinite(want_lse)
  np.testing.assert_allclose(np.asarray(lse)[finite], want_lse[finite], rtol=1e-5, atol=1e-5)


def test_fully_masked_rows_give_zeros_and_finite_gradients():
  q, k, v = _qkv(1, 4, 5, 2, 1, 8)
  mask = AttentionMask(causal=True, q_offset=-2)  # Queries 0 and 1 sit before every key.

  def loss(q, k, v):
    out, lse = ops.attention(q, k, v, mask, return_lse=True, implementation="xla")
    return jnp.sum(out**2) + jnp.sum(jnp.where(jnp.isfinite(lse), lse, 0.0))

  out, lse = ops.attention(q, k, v, mask, return_lse=True, implementation="xla")
  np.testing.assert_array_equal(np.asarray(out[:, :2]), 0.0)
  assert np.all(np.isneginf(np.asarray(lse[:, :2]))) and np.all(np.isfinite(np.asarray(lse[:, 2:])))
  grads = jax.grad(loss, argnums=(0, 1, 2))(q, k, v)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
  np.testing.assert_array_equal(np.asarray(grads[0][:, :2]), 0.0)


def test_packed_sequences_never_attend_across_segments():
  q, k, v = _qkv(1, 8, 8, 2, 2, 8)
  seg = jnp.asarray([[0, 0, 0, 1, 1, 1, 1, 1]])
  mask = AttentionMask(causal=True, q_segment_ids=seg, kv_segment_ids=seg)
  run = jax.jit(lambda k, v: ops.attention(q, k, v, mask, implementation="xla"))
  out = run(k, v)
  # Changing segment 0's keys and values leaves segment 1's outputs exactly as they were.
  out_changed = run(k.at[:, :3].mul(-3.0), v.at[:, :3].add(5.0))
  np.testing.assert_array_equal(np.asarray(out[:, 3:]), np.asarray(out_changed[:, 3:]))
  assert not np.allclose(np.asarray(out[:, :3]), np.asarray(out_changed[:, :3]))


@pytest.mark.parametrize("implementation, interpret", [("xla", False), ("pallas_triton", True)])
@pytest.mark.parametrize("fill", [0, 3, 11])
def test_decode_form_equals_full_form_on_the_last_positions(fill, implementation, interpret):
  """A cache of 16 slots filled to `fill`, then 2 new tokens: the decode form gives what full causal
  attention over the first fill + 2 tokens gives on its last two positions (the flash kernel too)."""
  t_new, capacity = 2, 16
  q_all, k_all, v_all = _qkv(2, fill + t_new, fill + t_new, 4, 2, 16, seed=fill)
  full = ops.attention(q_all, k_all, v_all, AttentionMask(causal=True), implementation="xla")
  rng = np.random.default_rng(1)
  garbage = lambda a: jnp.asarray(rng.standard_normal((2, capacity - fill - t_new, 2, 16)), a.dtype)
  # Slots past the fill hold garbage: the decode form must ignore them.
  k_cache = jnp.concatenate([k_all, garbage(k_all)], axis=1)
  v_cache = jnp.concatenate([v_all, garbage(v_all)], axis=1)
  out = ops.attention_decode(q_all[:, fill:], k_cache, v_cache, fill, implementation=implementation,
                             interpret=interpret)
  np.testing.assert_allclose(np.asarray(out), np.asarray(full[:, fill:]), rtol=1e-5, atol=1e-6)


def test_decode_form_with_per_row_fill_and_left_padding():
  q, k, v = _qkv(2, 1, 10, 2, 1, 8, seed=3)
  fill = jnp.asarray([4, 7])
  valid = np.ones((2, 10), bool)
  valid[1, :2] = False  # Row 1 is left padded by two slots.
  out = ops.attention_decode(q, k, v, fill, kv_valid_bs=valid, implementation="xla")
  for row, (first, last) in enumerate([(0, 4), (2, 7)]):
    want, _ = _numpy_attention(q[row:row + 1], k[row:row + 1], v[row:row + 1],
                               lambda b, h, t, s: first <= s <= last, 8**-0.5)
    np.testing.assert_allclose(np.asarray(out[row:row + 1]), want, rtol=1e-5, atol=1e-6)


def test_grouped_query_heads_read_their_shared_kv_head():
  q, k, v = _qkv(1, 3, 5, 4, 2, 8)
  grouped = ops.attention(q, k, v, implementation="xla")
  repeated = ops.attention(q, jnp.repeat(k, 2, axis=2), jnp.repeat(v, 2, axis=2), implementation="xla")
  np.testing.assert_allclose(np.asarray(grouped), np.asarray(repeated), rtol=1e-6, atol=1e-6)


def test_vmap_over_a_leading_axis():
  q, k, v = _qkv(3, 4, 4, 2, 2, 8)
  mask = AttentionMask(causal=True)
  batched = jax.vmap(lambda q, k, v: ops.attention(q[None], k[None], v[None], mask, implementation="xla")[0])(q, k, v)
  np.testing.assert_allclose(np.asarray(batched),
                             np.asarray(ops.attention(q, k, v, mask, implementation="xla")), rtol=1e-6, atol=1e-6)


def test_cpu_default_is_xla_and_cudnn_says_why_it_cannot_serve(caplog):
  q, k, v = (jax.ShapeDtypeStruct(a.shape, a.dtype) for a in _qkv(1, 4, 4, 2, 2, 8))
  assert ops.resolve_attention(q, k, v, AttentionMask(causal=True)) == "xla"
  with caplog.at_level(logging.INFO, logger="jaxlab.ops"):
    assert ops.resolve_attention(q, k, v, implementation=("cudnn", "xla")) == "xla"
  assert "cudnn needs a GPU" in caplog.text
  with pytest.raises(ops.NoImplementationError, match="cudnn needs a GPU"):
    ops.resolve_attention(q, k, v, implementation="cudnn")


@pytest.mark.parametrize("mask, t, s, reason", [
    (AttentionMask(causal=True, prefix_length=np.array([1])), 4, 4, "prefix-LM"),
    (AttentionMask(q_segment_ids=np.zeros((1, 4), int), kv_segment_ids=np.zeros((1, 4), int)), 4, 4, "segment ids"),
    (AttentionMask(explicit=np.ones((4, 4), bool)), 4, 4, "explicit"),
    (AttentionMask(causal=True), 1, 4, "top-left"),
    (AttentionMask(causal=True, q_offset=2), 4, 4, "no q_offset"),
    (AttentionMask(sliding_window=2), 4, 4, "only with causal"),
])
def test_cudnn_refuses_masks_it_cannot_express(mask, t, s, reason):
  normalized = api.normalize(mask, 1, 2, t, s)
  with pytest.raises(NotImplementedError, match=reason):
    api._cudnn_mask_arguments(normalized, t, s)


def test_cudnn_refuses_to_return_a_log_sum_exp(monkeypatch):
  # Its backward would drop the lse cotangent; the refusal comes before any cuDNN call.
  monkeypatch.setattr(api.registry, "require_platform", lambda *a, **k: None)
  q, k, v = _qkv(1, 4, 4, 2, 2, 8, dtype=np.float32)
  normalized = api.normalize(None, 1, 2, 4, 4)
  with pytest.raises(NotImplementedError, match="gradients do not flow"):
    api._cudnn(q, k, v, normalized, scale=1.0, logit_soft_cap=None, return_lse=True, block_config=None,
               interpret=False)


def test_cudnn_mask_arguments_for_causal_window_and_lengths():
  normalized = api.normalize(AttentionMask(causal=True, sliding_window=5, kv_length=np.array([3])), 1, 2, 4, 4)
  arguments = api._cudnn_mask_arguments(normalized, 4, 4)
  assert arguments["is_causal"] and arguments["local_window_size"] == (4, 0)
  np.testing.assert_array_equal(np.asarray(arguments["key_value_seq_lengths"]), [3])


BAD_CALLS = [
    (dict(q=(1, 4, 3, 8), k=(1, 4, 2, 8)), "2 key/value heads must divide the 3 query heads"),
    (dict(q=(1, 4, 2, 8), k=(1, 4, 2, 16)), "head dim"),
    (dict(q=(2, 4, 2, 8), k=(1, 4, 2, 8)), "batch"),
    (dict(q=(1, 4, 2), k=(1, 4, 2, 8)), "q must be 4-D"),
    (dict(q=(1, 4, 2, 8), k=(1, 4, 2, 8), v=(1, 5, 2, 8)), "v must have k's shape"),
    (dict(q=(1, 4, 2, 8), k=(1, 4, 2, 8), kdtype=jnp.bfloat16), "share one dtype"),
    (dict(q=(1, 4, 2, 8), k=(1, 4, 2, 8), mask=AttentionMask(explicit=np.ones((4, 5), bool))), "explicit must have shape"),
    (dict(q=(1, 4, 2, 8), k=(1, 4, 2, 8), mask=AttentionMask(explicit=np.ones((4, 4), int))), "explicit must be bool"),
    (dict(q=(1, 4, 2, 8), k=(1, 4, 2, 8), mask=AttentionMask(kv_length=np.array([1, 2]))), "kv_length must have shape"),
    (dict(q=(1, 4, 2, 8), k=(1, 4, 2, 8), mask=AttentionMask(q_segment_ids=np.zeros((1, 4), int))), "together"),
    (dict(q=(1, 4, 2, 8), k=(1, 4, 2, 8), mask=AttentionMask(prefix_length=np.array([1]))), "needs causal"),
    (dict(q=(1, 4, 2, 8), k=(1, 4, 2, 8), mask=AttentionMask(causal=True, sliding_window=0)), "sliding_window"),
    (dict(q=(1, 4, 2, 8), k=(1, 4, 2, 8), scale=-1.0), "scale"),
    (dict(q=(1, 4, 2, 8), k=(1, 4, 2, 8), cap=0.0), "logit_soft_cap"),
]


@pytest.mark.parametrize("call, message", BAD_CALLS)
def test_bad_input_is_refused_before_tracing_with_the_argument_named(call, message):
  q = jax.ShapeDtypeStruct(call["q"], jnp.float32)
  k = jax.ShapeDtypeStruct(call["k"], call.get("kdtype", jnp.float32))
  v = jax.ShapeDtypeStruct(call.get("v", call["k"]), call.get("kdtype", jnp.float32))
  with pytest.raises((ValueError, TypeError), match=message):
    ops.resolve_attention(q, k, v, call.get("mask"), scale=call.get("scale"), logit_soft_cap=call.get("cap"))

"""Tests for `context_parallel_attention`: on meshes with a "context" axis of 4, both strategies
give the values, log-sum-exps and q/k/v gradients of single-device `attention` (xla) for every
mask kind; and the argument errors.

One jitted function per case returns the outputs and the gradients together, so each case
compiles once per strategy and mesh.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxlab.ops.attention_op.api import attention
from kernels_pallas.attention.config import FlashBlockConfig
from jaxlab.ops.attention_op.context_parallel import context_axis_size, context_parallel_attention
from jaxlab.ops.attention_op.mask import AttentionMask
from jaxlab.sharding import make_mesh

B, T, D = 2, 32, 16


def _segments(t):
  """[B, t] packed-sequence ids: row 0 has segments of 5, 14 and 13 tokens, row 1 one of t."""
  row0 = np.repeat([0, 1, 2], [5, 14, t - 19])
  return np.stack([row0, np.zeros(t, np.int32)]).astype(np.int32)


_EXPLICIT = np.random.default_rng(3).random((B, 1, T, T)) < 0.5

# (id, mask, (T, S, H, KV), extra keyword arguments). Chunks are T/4 = 8 queries and S/4 keys.
CASES = [
    ("no-mask", None, (T, T, 2, 2), {}),
    ("causal", AttentionMask(causal=True), (T, T, 2, 2), {}),
    ("causal-packed", AttentionMask(causal=True, q_segment_ids=_segments(T), kv_segment_ids=_segments(T)),
     (T, T, 2, 2), {}),
    # Row 0 sees no key at all (lse -inf everywhere), row 1 only the first two chunks.
    ("kv-length", AttentionMask(kv_length=np.array([0, 13])), (T, T, 2, 2), {}),
    ("causal-window", AttentionMask(causal=True, sliding_window=6), (T, T, 2, 2), {}),
    ("bidirectional-window", AttentionMask(sliding_window=5), (T, T, 2, 2), {}),
    ("prefix-lm", AttentionMask(causal=True, prefix_length=np.array([11, 3])), (T, T, 2, 2), {}),
    ("gqa-causal-softcap", AttentionMask(causal=True), (T, T, 4, 2), dict(logit_soft_cap=5.0, scale=0.3)),
    # T != S: the default q_offset S - T puts the 16 queries on the last 16 key positions.
    ("cross-causal-offset", AttentionMask(causal=True), (16, T, 2, 1), {}),
    ("explicit", AttentionMask(explicit=_EXPLICIT), (T, T, 2, 2), {}),
]

MESHES = {
    "context4": lambda: make_mesh({"context": 4}, devices=jax.devices()[:4]),
    "data2-context4": lambda: make_mesh({"data": 2, "context": 4}),
    "context4-tensor2": lambda: make_mesh({"context": 4, "tensor": 2}),
    "context2": lambda: make_mesh({"context": 2}, devices=jax.devices()[:2]),
}


def _inputs(t, s, h, kv, seed=0):
  rng = np.random.default_rng(seed)
  arrays = (rng.standard_normal((B, t, h, D)) * 1.5, rng.standard_normal((B, s, kv, D)),
            rng.standard_normal((B, s, kv, D)), rng.standard_normal((B, t, h, D)), rng.standard_normal((B, t, h)))
  return tuple(jnp.asarray(a, jnp.float32) for a in arrays)


def _values_and_grads(fn):
  """jit of (q, k, v, out cotangent, lse cotangent) -> (out, lse, dq, dk, dv)."""
  def run(q, k, v, d_out, d_lse):
    (out, lse), pullback = jax.vjp(fn, q, k, v)
    return (out, lse, *pullback((d_out, d_lse)))
  return jax.jit(run)


def _check_case(mesh_name, case, strategies=("ring", "all_gather"), **settings):
  _, mask, (t, s, h, kv), kwargs = case
  q, k, v, d_out, d_lse = _inputs(t, s, h, kv)
  want = _values_and_grads(lambda q, k, v: attention(
      q, k, v, mask, return_lse=True, implementation="xla", **kwargs))(q, k, v, d_out, d_lse)
  mesh = MESHES[mesh_name]()
  with jax.set_mesh(mesh):
    sharded = NamedSharding(mesh, P(None, "context"))
    placed = [jax.device_put(x, sharded) for x in (q, k, v, d_out, d_lse)]
    for strategy in strategies:
      got = _values_and_grads(lambda q, k, v: context_parallel_attention(
          q, k, v, mask, strategy=strategy, return_lse=True, **(settings or dict(implementation="xla")),
          **kwargs))(*placed)
      for name, g, w in zip(("out", "lse", "dq", "dk", "dv"), got, want):
        assert g.shape == w.shape and g.dtype == w.dtype, (strategy, name)
        assert np.all(np.isfinite(g) | (name == "lse")), (strategy, name)
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=2e-5, atol=2e-5, err_msg=f"{strategy} {name}")
      assert got[0].sharding.spec[1] == "context", strategy


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_single_device_attention_on_data2_context4(case):
  _check_case("data2-context4", case)


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("causal-packed", "kv-length", "prefix-lm")],
                         ids=lambda c: c[0])
def test_matches_single_device_attention_on_context4_alone(case):
  _check_case("context4", case)


def test_gqa_heads_split_over_tensor_as_well():
  _check_case("context4-tensor2", next(c for c in CASES if c[0] == "gqa-causal-softcap"), strategies=("ring",))


def test_pallas_flash_kernel_in_the_interpreter_serves_the_steps():
  # Two chunks of 16 keys: one tile each. kv_length 13 leaves row 0's second chunk all masked.
  case = ("pallas", AttentionMask(causal=True, kv_length=np.array([32, 13])), (T, T, 2, 1), {})
  _check_case("context2", case, implementation="pallas_triton", interpret=True,
              block_config=FlashBlockConfig(block_q=16, block_k=16, block_q_dkv=16, block_k_dkv=16))


def test_fully_masked_rows_give_zeros_and_minus_inf_lse():
  mask = AttentionMask(kv_length=np.array([0, 13]))
  q, k, v, _, _ = _inputs(T, T, 2, 2)
  with jax.set_mesh(MESHES["context4"]()):
    out, lse = jax.jit(lambda q, k, v: context_parallel_attention(
        q, k, v, mask, return_lse=True, implementation="xla"))(q, k, v)
  assert np.all(np.asarray(out[0]) == 0) and np.all(np.isneginf(np.asarray(lse[0])))
  assert np.all(np.isfinite(np.asarray(lse[1])))


def test_context_axis_size():
  assert context_axis_size() == 1
  with jax.set_mesh(MESHES["data2-context4"]()):
    assert context_axis_size() == 4
    assert context_axis_size("data") == 2
    assert context_axis_size("sequence") == 1


def test_argument_errors():
  q, k, v, _, _ = _inputs(T, T, 2, 2)
  with pytest.raises(ValueError, match="'context' is not an axis of the ambient mesh"):
    context_parallel_attention(q, k, v)
  with jax.set_mesh(MESHES["data2-context4"]()):
    with pytest.raises(ValueError, match="unknown strategy 'tree'"):
      context_parallel_attention(q, k, v, strategy="tree")
    with pytest.raises(ValueError, match="'seq' is not an axis"):
      context_parallel_attention(q, k, v, axis_name="seq")
    with pytest.raises(ValueError, match=r"T=30 and S=32 must both be divisible by the size 4"):
      context_parallel_attention(q[:, :30], k, v)
    with pytest.raises(ValueError, match=r"T=32 and S=30"):
      context_parallel_attention(q, k[:, :30], v[:, :30])

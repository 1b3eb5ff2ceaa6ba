"""Expert parallelism on 8 fake CPU devices: same outputs, aux and gradients as one device."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab import _compat
from jaxlab.moe import MoEFeedForward, moe_ffn, moe_ffn_expert_parallel
from jaxlab.quant_formats import ExpertWeights
from jaxlab.sharding import make_mesh
from tests.moe import naive

T, D, F, K = 32, 8, 12, 2
MESHES = {"expert8": {"expert": 8}, "data2_expert4": {"data": 2, "expert": 4}}


def _weights(num_experts, seed=0):
  rng = np.random.default_rng(seed)
  x_td = jnp.asarray(rng.normal(size=(T, D)), jnp.float32)
  router = jnp.asarray(rng.normal(size=(D, num_experts)), jnp.float32)
  gate_up = jnp.asarray(rng.normal(size=(num_experts, D, 2 * F)) / np.sqrt(D), jnp.float32)
  down = jnp.asarray(rng.normal(size=(num_experts, F, D)) / np.sqrt(F), jnp.float32)
  return x_td, router, gate_up, down


def _outputs_and_grads(ffn, x_td, router, gate_up, down, target_td):
  """(y_td, aux) and the gradients of a loss using y and both aux losses w.r.t. x and every weight."""

  def loss(x_td, router, gate_up, down):
    y_td, aux = ffn(x_td, router, gate_up, down)
    return jnp.sum((y_td - target_td) ** 2) + 0.1 * aux.load_balancing_loss + 0.01 * aux.router_z_loss

  return ffn(x_td, router, gate_up, down), jax.grad(loss, argnums=(0, 1, 2, 3))(x_td, router, gate_up, down)


# Cached so that the tests one process runs compile each function once.
@functools.cache
def _single_device_fn():
  single = functools.partial(moe_ffn, top_k=K, renormalize=False, implementation="xla")
  return jax.jit(functools.partial(_outputs_and_grads, single))


@functools.cache
def _expert_parallel_fn(mesh_name):
  mesh = make_mesh(MESHES[mesh_name])
  parallel = functools.partial(
      moe_ffn_expert_parallel, top_k=K, renormalize=False, implementation="xla", mesh=mesh
  )
  return jax.jit(functools.partial(_outputs_and_grads, parallel))


def _check_parallel_matches_single(mesh_name, x_td, router, gate_up, down):
  target_td = jnp.asarray(np.random.default_rng(9).normal(size=(T, D)), jnp.float32)
  (y1, aux1), grads1 = _single_device_fn()(x_td, router, gate_up, down, target_td)
  (yp, auxp), gradsp = _expert_parallel_fn(mesh_name)(x_td, router, gate_up, down, target_td)
  np.testing.assert_allclose(yp, y1, rtol=1e-5, atol=1e-5)
  want, _, _ = naive.moe_loop_np(x_td, router, gate_up, down, K, False)
  np.testing.assert_allclose(yp, want, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(auxp.tokens_per_expert, aux1.tokens_per_expert)
  assert int(np.sum(auxp.tokens_per_expert)) == T * K
  for name in ("load_balancing_loss", "router_z_loss", "router_probs_mean"):
    np.testing.assert_allclose(getattr(auxp, name), getattr(aux1, name), rtol=1e-5, err_msg=name)
  for name, gp, g1 in zip(("x", "router", "gate_up", "down"), gradsp, grads1):
    scale = np.abs(np.asarray(g1)).max()
    np.testing.assert_allclose(gp, g1, rtol=1e-5, atol=1e-5 * scale, err_msg=name)
  return auxp


@pytest.mark.parametrize("mesh_name", MESHES)
def test_expert_parallel_matches_single_device_outputs_and_grads(mesh_name):
  _check_parallel_matches_single(mesh_name, *_weights(16))


def test_expert_parallel_is_dropless_when_every_row_goes_to_one_shard():
  x_td, router, gate_up, down = _weights(16, seed=1)
  x_td = jnp.abs(x_td)
  # Experts 0 and 1 (both on shard 0 of 8) win every token's top-2 by a wide margin.
  router = router.at[:, :2].set(10.0)
  aux = _check_parallel_matches_single("expert8", x_td, router, gate_up, down)
  np.testing.assert_array_equal(aux.tokens_per_expert[:2], [T, T])


def _contains_all_to_all(fn, *args) -> bool:
  return "all_to_all" in str(jax.make_jaxpr(fn)(*args))


def test_module_picks_expert_parallel_under_mesh_with_expert_axis():
  layer = MoEFeedForward(8, K, F, num_shared_experts=1, shared_expert_gate=True, implementation="xla")
  x_bsd = jnp.asarray(np.random.default_rng(2).normal(size=(4, 8, D)), jnp.float32)
  shapes = nn.unbox(jax.eval_shape(layer.init, jax.random.key(0), x_bsd))
  rng = np.random.default_rng(3)
  draw = lambda s: jnp.asarray(rng.normal(size=s.shape) / np.sqrt(s.shape[-2]), s.dtype)
  variables = jax.tree.map(draw, shapes)

  assert not _contains_all_to_all(layer.apply, variables, x_bsd)  # No mesh: single-device path.
  with _compat.set_mesh(make_mesh({"expert": 8})):
    assert _contains_all_to_all(layer.apply, variables, x_bsd)
    assert not _contains_all_to_all(layer.clone(expert_parallel=False).apply, variables, x_bsd)
    y_ep, aux_ep = jax.jit(layer.apply)(variables, x_bsd)
  with _compat.set_mesh(make_mesh({"data": 8})):
    assert not _contains_all_to_all(layer.apply, variables, x_bsd)  # "expert" axis of size 1.
    assert _contains_all_to_all(layer.clone(expert_parallel="data").apply, variables, x_bsd)

  params = variables["params"]
  x_td = np.asarray(x_bsd).reshape(-1, D)
  want_td, experts_tk, _ = naive.moe_loop_np(x_td, params["router"], params["gate_up"], params["down"], K, True)
  shared_gate_up, shared_down = np.asarray(params["shared_gate_up"])[0], np.asarray(params["shared_down"])[0]
  want_td += naive.shared_np(
      x_td, shared_gate_up[:, :F], shared_gate_up[:, F:], shared_down, params["shared_gate"]
  )
  np.testing.assert_allclose(y_ep, want_td.reshape(x_bsd.shape), rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(aux_ep.tokens_per_expert, np.bincount(experts_tk.ravel(), minlength=8))


def test_expert_parallel_rejects_bad_arguments():
  x_td, router, gate_up, down = _weights(16)
  mesh = make_mesh({"expert": 8})
  ep = functools.partial(moe_ffn_expert_parallel, top_k=K)
  with pytest.raises(ValueError, match="needs a mesh"):
    ep(x_td, router, gate_up, down)
  with pytest.raises(ValueError, match="axis_name"):
    ep(x_td, router, gate_up, down, mesh=mesh, axis_name="model")
  with pytest.raises(ValueError, match="token_axes"):
    ep(x_td, router, gate_up, down, mesh=mesh, token_axes=("data",))
  with pytest.raises(ValueError, match="split evenly"):
    ep(x_td, router[:, :12], gate_up[:12], down[:12], mesh=mesh)
  with pytest.raises(ValueError, match="not divisible"):
    ep(x_td[:12], router, gate_up, down, mesh=mesh)
  with pytest.raises(ValueError, match="top_k"):
    ep(x_td, router, gate_up, down, mesh=mesh, top_k=17)
  with pytest.raises(TypeError, match="dense"):
    # An uninitialised instance: only the type matters, and it is rejected before use.
    ep(x_td, router, ExpertWeights.__new__(ExpertWeights), down, mesh=mesh)

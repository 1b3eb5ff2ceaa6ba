"""Tests for the op dispatcher: order, fallback, errors, logging and resolve."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab import ops
from jaxlab.ops import registry


def _declines(reason):
  def impl(x, *, interpret):
    del x, interpret
    raise NotImplementedError(reason)

  return impl


def _adds(amount):
  def impl(x, *, interpret):
    del interpret
    return x + amount

  return impl


def _ops_messages(caplog):
  return [r.getMessage() for r in caplog.records if r.name == "jaxlab.ops"]


def test_default_preference_per_backend():
  assert registry.default_preference("gpu") == ("pallas_triton", "xla")
  assert registry.default_preference("tpu") == ("pallas_tpu", "xla")
  assert registry.default_preference("cpu") == ("xla",)
  # The tests run on CPU, so None means the CPU order.
  assert registry.candidates(None) == ("xla",)


def test_candidates_normalises_names_and_drops_repeats():
  assert registry.candidates("pallas_tpu") == ("pallas_tpu",)
  assert registry.candidates(["pallas_triton", "xla", "pallas_triton"]) == ("pallas_triton", "xla")


@pytest.mark.parametrize("implementation", ["triton", ["xla", "cuda"], ("Xla",)])
def test_unknown_implementation_name_is_value_error_listing_valid_names(implementation):
  op = registry.Op("toy", {"xla": _adds(1.0)})
  with pytest.raises(ValueError) as info:
    op(jnp.zeros(3), implementation=implementation)
  for name in registry.IMPLEMENTATIONS:
    assert name in str(info.value)


def test_empty_implementation_sequence_is_value_error():
  with pytest.raises(ValueError, match="empty"):
    registry.candidates([])


def test_registering_an_unknown_implementation_is_value_error():
  with pytest.raises(ValueError, match="pallas_cuda"):
    registry.Op("toy", {"pallas_cuda": _adds(1.0)})


def test_falls_back_on_not_implemented_and_logs_choice(caplog):
  op = registry.Op("toy", {"pallas_triton": _declines("tile too large"), "xla": _adds(1.0)})
  with caplog.at_level(logging.INFO, logger="jaxlab.ops"):
    name, out = op.dispatch(jnp.zeros(3), implementation=("pallas_triton", "xla"))
  assert name == "xla"
  np.testing.assert_array_equal(out, np.ones(3))
  messages = _ops_messages(caplog)
  assert any("toy" in m and "running xla" in m and "tile too large" in m for m in messages), messages


def test_first_serving_implementation_wins():
  op = registry.Op("toy", {"pallas_triton": _adds(2.0), "xla": _adds(1.0)})
  out = op(jnp.zeros(3), implementation=("pallas_triton", "xla"), interpret=True)
  np.testing.assert_array_equal(out, np.full(3, 2.0))


def test_all_failed_error_lists_every_implementation_and_reason():
  op = registry.Op(
      "toy",
      {"pallas_triton": _declines("needs compute capability 8.0"), "xla": _declines("dtype int4 unsupported")},
  )
  with pytest.raises(registry.NoImplementationError) as info:
    op(jnp.zeros(3), implementation=("pallas_triton", "pallas_tpu", "xla"))
  error = info.value
  assert isinstance(error, NotImplementedError)
  assert [name for name, _ in error.failures] == ["pallas_triton", "pallas_tpu", "xla"]
  message = str(error)
  for text in ("toy", "pallas_triton", "needs compute capability 8.0", "pallas_tpu", "has no pallas_tpu", "xla",
               "dtype int4 unsupported"):
    assert text in message


def test_other_errors_are_not_swallowed():
  # A kernel that breaks (not one that declines) must surface, not fall back silently.
  def broken(x, *, interpret):
    raise TypeError("bad kernel")

  op = registry.Op("toy", {"pallas_triton": broken, "xla": _adds(1.0)})
  with pytest.raises(TypeError, match="bad kernel"):
    op(jnp.zeros(3), implementation=("pallas_triton", "xla"))


def test_interpret_flag_reaches_the_implementation():
  seen = []

  def impl(x, *, interpret):
    seen.append(interpret)
    return x

  op = registry.Op("toy", {"xla": impl})
  op(jnp.zeros(3), interpret=True)
  op(jnp.zeros(3))
  assert seen == [True, False]


def test_require_platform_on_cpu():
  with pytest.raises(NotImplementedError, match=r"needs a GPU.*interpret=True"):
    registry.require_platform("pallas_triton", interpret=False)
  with pytest.raises(NotImplementedError, match=r"needs a TPU.*interpret=True"):
    registry.require_platform("pallas_tpu", interpret=False)
  registry.require_platform("pallas_triton", interpret=True)
  registry.require_platform("xla", interpret=False)


def test_resolve_names_the_implementation_for_abstract_inputs():
  op = registry.Op("toy", {"pallas_triton": _declines("no"), "xla": _adds(1.0)})
  spec = jax.ShapeDtypeStruct((2, 3), jnp.float32)
  assert op.resolve(spec, implementation=("pallas_triton", "xla")) == "xla"
  serving = registry.Op("toy", {"pallas_triton": _adds(1.0)})
  assert serving.resolve(spec, implementation="pallas_triton") == "pallas_triton"
  with pytest.raises(registry.NoImplementationError):
    op.resolve(spec, implementation="pallas_triton")


def test_logs_once_per_jit_trace(caplog):
  op = registry.Op("toy", {"xla": _adds(1.0)})
  f = jax.jit(lambda x: op(x))
  with caplog.at_level(logging.INFO, logger="jaxlab.ops"):
    f(jnp.zeros(3))
    f(jnp.ones(3))  # Cache hit: no new trace, no new record.
    f(jnp.zeros(4))  # New shape: new trace.
  assert sum("running xla" in m for m in _ops_messages(caplog)) == 2


def test_an_op_may_order_its_implementations_per_backend():
  preference = {"gpu": ("cudnn", "pallas_triton", "xla")}
  assert registry.default_preference("gpu", preference) == ("cudnn", "pallas_triton", "xla")
  # A backend the op does not name keeps the common order.
  assert registry.default_preference("tpu", preference) == ("pallas_tpu", "xla")
  op = registry.Op("ordered", {"xla": _adds(1.0), "pallas_triton": _adds(2.0)},
                   preference={"cpu": ("pallas_triton", "xla")})
  assert float(op(jnp.zeros(()), interpret=True)) == 2.0  # Its own CPU order puts the kernel first.
  assert float(registry.Op("common", {"xla": _adds(1.0), "pallas_triton": _adds(2.0)})(jnp.zeros(()))) == 1.0


def test_cudnn_needs_a_gpu_even_when_interpreting():
  # interpret=True runs Pallas kernels anywhere, but cuDNN is a library, not a kernel.
  with pytest.raises(NotImplementedError, match="cudnn needs a GPU"):
    registry.require_platform("cudnn", interpret=True)


@pytest.mark.parametrize("value, want", [(None, None), ("xla", "xla"), (["cudnn", "xla"], ("cudnn", "xla"))])
def test_check_implementation_returns_a_hashable_setting(value, want):
  assert registry.check_implementation("Config.attention_implementation", value) == want


@pytest.mark.parametrize("value", ["flash", [], 3])
def test_check_implementation_names_the_setting(value):
  with pytest.raises(ValueError, match="Config.attention_implementation"):
    registry.check_implementation("Config.attention_implementation", value)


# One policy for every op's kernel import (registry.load_kernel).

def _import_failing_with(missing_name):
  real_import = registry.importlib.import_module

  def fake_import(name, *args, **kwargs):
    if name.startswith("kernels_pallas.") and name.endswith(".triton"):
      raise ModuleNotFoundError(f"No module named {missing_name!r}", name=missing_name)
    return real_import(name, *args, **kwargs)

  return fake_import


@pytest.mark.parametrize("call", [
    lambda: ops.rms_norm(jnp.ones((2, 8)), jnp.ones((8,)), implementation=("pallas_triton", "xla"), interpret=True),
    lambda: ops.attention(jnp.ones((1, 4, 2, 16)), jnp.ones((1, 4, 2, 16)), jnp.ones((1, 4, 2, 16)),
                          implementation=("pallas_triton", "xla"), interpret=True),
])
def test_a_kernel_missing_a_third_party_module_falls_back_and_is_recorded(monkeypatch, caplog, call):
  monkeypatch.setattr(registry, "_UNAVAILABLE", {})
  monkeypatch.setattr(registry.importlib, "import_module", _import_failing_with("triton_lowering_extra"))
  with caplog.at_level(logging.INFO, logger="jaxlab.ops"):
    call()
  assert any("running xla after skipping pallas_triton" in r.getMessage() for r in caplog.records)
  (reason,) = registry.unavailable_kernels().values()
  assert "triton_lowering_extra" in reason


@pytest.mark.parametrize("missing", ["kernels_pallas.rms_norm.helpers", "jaxlab.quant_formats.gone"])
def test_a_broken_kernel_module_raises_instead_of_falling_back(monkeypatch, missing):
  monkeypatch.setattr(registry.importlib, "import_module", _import_failing_with(missing))
  with pytest.raises(ModuleNotFoundError, match=missing.split(".")[-1]):
    ops.rms_norm(jnp.ones((2, 8)), jnp.ones((8,)), implementation=("pallas_triton", "xla"), interpret=True)


def test_a_kernel_that_fails_at_import_raises(monkeypatch):
  def broken(name, *args, **kwargs):
    raise SyntaxError("invalid syntax (triton.py, line 3)")

  monkeypatch.setattr(registry.importlib, "import_module", broken)
  with pytest.raises(SyntaxError):
    registry.load_kernel("pallas_triton", "kernels_pallas.rms_norm.triton")

"""Test-wide setup: 8 fake CPU devices, set before jax starts."""

import os

# Must run before jax initialises its backends; conftest is imported first.
_FLAG = "--xla_force_host_platform_device_count=8"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
# The suite compiles thousands of small programs and runs each a few times: skipping LLVM's
# costly passes halves compile time (measured on 2 cores) and costs little at these sizes.
# Subprocess tests (tests/e2e) start with their own flags.
for _fast_compile in ("--xla_llvm_disable_expensive_passes=true", "--xla_backend_optimization_level=0"):
  if _fast_compile.split("=")[0] not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " " + _fast_compile
os.environ.setdefault("JAX_PLATFORMS", "cpu")


import gc

import pytest


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs_after_each_module():
  """Drops jax's compiled programs once a test module is done.

  Each CPU executable keeps its own memory mappings. A test worker that runs ~1,700 tests
  without releasing them passes Linux's default `vm.max_map_count` (65,530), and XLA's
  compiler then crashes (SIGSEGV) on the next mmap. Modules rarely share programs, so
  clearing costs few recompiles.
  """
  yield
  import jax  # pylint: disable=g-import-not-at-top  # after XLA_FLAGS above

  jax.clear_caches()
  gc.collect()

"""The one place that knows about jax / flax version differences.

jaxlab supports jax 0.10.x (CPU CI, Python 3.11) and jax 0.11.x (GPU host). Anything whose
import path or signature moved between them is imported here and nowhere else.
"""

import jax

JAX_VERSION = tuple(int(p) for p in jax.__version__.split(".")[:3] if p.isdigit())

# shard_map left jax.experimental in 0.7; its replication check is `check_vma` since then.
shard_map = jax.shard_map

# `jax.set_mesh` is the context manager that makes a mesh the ambient one.
set_mesh = jax.set_mesh

# The mesh made ambient by `jax.set_mesh` (an empty AbstractMesh when there is none).
get_abstract_mesh = jax.sharding.get_abstract_mesh

# Values being traced by jit/grad/vmap are Tracers; concrete arrays are not.
Tracer = jax.core.Tracer

# Auto mesh axes let the compiler propagate shardings (GSPMD). `jax.make_mesh` defaults to
# Explicit axes (jax 0.10), under which sharding constraints mean something else.
AUTO_AXIS_TYPE = jax.sharding.AxisType.Auto


def triton_compiler_params(num_warps: int, num_stages: int):
  """Compiler params for a Pallas kernel lowered through Triton."""
  # Imported lazily: the Triton backend is deprecated upstream (0.11) and may move.
  from jax.experimental.pallas import triton as pltriton

  return pltriton.CompilerParams(num_warps=num_warps, num_stages=num_stages)


def pallas_triton():
  """`jax.experimental.pallas.triton`: masked load/store and atomics of the Triton lowering."""
  # Same lazy import as above, for the same reason.
  from jax.experimental.pallas import triton as pltriton

  return pltriton

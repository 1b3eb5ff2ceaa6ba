"""Dispatch of an op to one of several implementations.

Every op in `jaxlab.ops` is an `Op`: a name plus a mapping from implementation name to a
callable. Calling the op tries the requested implementations in order; one that cannot
serve the call raises `NotImplementedError(reason)` and the next is tried. If none serves,
`NoImplementationError` lists every implementation tried with its reason.

The choice is made while tracing (once per `jax.jit` trace, on every eager call) and is
logged at INFO on the `jaxlab.ops` logger, so a kernel that silently falls back to XLA
shows up in the logs. `Op.resolve` answers "which implementation would run?" without
running anything.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

IMPLEMENTATIONS = ("xla", "cudnn", "pallas_triton", "pallas_mosaic_gpu", "pallas_tpu")

# Best first. XLA closes every list: it runs everywhere.
_PREFERENCE_BY_BACKEND = {
    "gpu": ("pallas_triton", "xla"),
    "tpu": ("pallas_tpu", "xla"),
    "cpu": ("xla",),
}

# Pallas implementations compile for one platform; interpret mode runs them anywhere.
_REQUIRED_BACKEND = {"cudnn": "gpu", "pallas_triton": "gpu", "pallas_mosaic_gpu": "gpu", "pallas_tpu": "tpu"}

# Lowest CUDA compute capability each GPU implementation compiles for (Ampere, Hopper).
_MIN_COMPUTE_CAPABILITY = {"cudnn": 8.0, "pallas_triton": 8.0, "pallas_mosaic_gpu": 9.0}

logger = logging.getLogger("jaxlab.ops")

ImplementationArg = str | Sequence[str] | None


class NoImplementationError(NotImplementedError):
  """No implementation could serve a call; `failures` holds (name, reason) per attempt."""

  def __init__(self, op_name: str, failures: Sequence[tuple[str, str]]):
    self.op_name = op_name
    self.failures = tuple(failures)
    tried = "\n".join(f"  {name}: {reason}" for name, reason in self.failures)
    super().__init__(f"no implementation of {op_name!r} could serve this call; tried:\n{tried}")


def default_preference(
    backend: str | None = None, preference: Mapping[str, tuple[str, ...]] | None = None
) -> tuple[str, ...]:
  """Implementations to try, best first, for `backend` (default: `jax.default_backend()`).

  `preference` is an op's own order per backend; backends it does not name use the common one.
  """
  backend = jax.default_backend() if backend is None else backend
  if preference is not None and backend in preference:
    return tuple(preference[backend])
  return _PREFERENCE_BY_BACKEND.get(backend, ("xla",))


def candidates(
    implementation: ImplementationArg,
    backend: str | None = None,
    preference: Mapping[str, tuple[str, ...]] | None = None,
) -> tuple[str, ...]:
  """Normalises the `implementation=` argument to a tuple of valid names, in order.

  Raises:
    ValueError: a name is not one of `IMPLEMENTATIONS`, or the sequence is empty.
  """
  if implementation is None:
    return default_preference(backend, preference)
  names = (implementation,) if isinstance(implementation, str) else tuple(implementation)
  if not names:
    raise ValueError(f"implementation sequence is empty; valid names: {', '.join(IMPLEMENTATIONS)}")
  unknown = [name for name in names if name not in IMPLEMENTATIONS]
  if unknown:
    raise ValueError(
        f"unknown implementation(s) {', '.join(map(repr, unknown))}; "
        f"valid names: {', '.join(IMPLEMENTATIONS)} (or None for the best available)"
    )
  return tuple(dict.fromkeys(names))  # Drops repeats, keeps order.


def check_implementation(where: str, implementation: ImplementationArg) -> str | tuple[str, ...] | None:
  """Validates a config's implementation setting; returns it hashable (a list becomes a tuple).

  Raises:
    ValueError: naming `where`, for an unknown name or an empty sequence.
  """
  if implementation is None:
    return None
  if not isinstance(implementation, str) and not isinstance(implementation, Sequence):
    raise ValueError(f"{where} must be None, an implementation name or a sequence of them, got {implementation!r}")
  try:
    candidates(implementation)
  except ValueError as e:
    raise ValueError(f"{where}: {e}") from None
  return implementation if isinstance(implementation, str) else tuple(implementation)


# Top-level packages of jaxlab itself: a missing module under them is a bug, not a missing extra.
_OWN_PACKAGES = ("jaxlab", "kernels_pallas")

# kernel module -> why it could not be imported, for `unavailable_kernels`.
_UNAVAILABLE: dict[str, str] = {}


def load_kernel(implementation: str, module: str):
  """Imports a kernel module for `implementation`, under the one policy every op follows.

  A kernel whose *third-party* dependency is missing (e.g. a jax build without Pallas' Triton
  lowering) cannot serve: this raises NotImplementedError with the reason, which the op records
  and logs before falling back to its next implementation; `unavailable_kernels()` lists it.
  A kernel module that is itself broken (a syntax error, a missing jaxlab or kernels_pallas
  name, anything else raised at import) is a bug: the error propagates and nothing falls back.
  """
  try:
    return importlib.import_module(module)
  except ModuleNotFoundError as e:
    missing = e.name or ""
    if missing.split(".")[0] in _OWN_PACKAGES:
      raise
    reason = f"{implementation} kernel {module} needs {missing!r}, which is not installed"
    if module not in _UNAVAILABLE:
      logger.warning("%s", reason)
    _UNAVAILABLE[module] = reason
    raise NotImplementedError(reason) from e


def unavailable_kernels() -> dict[str, str]:
  """Kernel module -> the reason it could not be imported, for every kernel tried so far."""
  return dict(_UNAVAILABLE)


def native_backend(implementation: str) -> str | None:
  """Backend an implementation compiles for ("gpu", "tpu"), or None if it runs on any."""
  return _REQUIRED_BACKEND.get(implementation)


def require_platform(implementation: str, *, interpret: bool) -> None:
  """Raises NotImplementedError unless `implementation` can compile for this machine.

  Pallas implementations need their platform (GPU or TPU) unless `interpret=True`, which runs
  them through the Pallas interpreter on any backend.
  """
  if implementation not in _REQUIRED_BACKEND or (interpret and implementation.startswith("pallas")):
    return
  needed = _REQUIRED_BACKEND[implementation]
  backend = jax.default_backend()
  if backend != needed:
    raise NotImplementedError(
        f"{implementation} needs a {needed.upper()} (default backend is {backend!r})"
        + ("" if implementation == "cudnn" else "; pass interpret=True to run it in the Pallas interpreter")
    )
  min_capability = _MIN_COMPUTE_CAPABILITY.get(implementation)
  # Only CUDA devices report a compute capability; other GPUs are left to the compiler.
  capability = getattr(jax.devices()[0], "compute_capability", None)
  if min_capability is not None and capability is not None and float(capability) < min_capability:
    raise NotImplementedError(
        f"{implementation} needs compute capability >= {min_capability}, device has {capability}"
    )


@dataclasses.dataclass(frozen=True)
class Op:
  """An op with several implementations.

  Attributes:
    name: op name used in logs and errors, e.g. "rms_norm".
    implementations: implementation name -> callable. Each callable takes the op's
      arguments plus a keyword `interpret: bool`, and raises NotImplementedError(reason)
      when it cannot serve the call (platform, shape, dtype).
    preference: backend -> implementations to try, best first, when the caller names none;
      None (or a backend not named) uses the common order (`default_preference`).
  """

  name: str
  implementations: Mapping[str, Callable[..., Any]]
  preference: Mapping[str, tuple[str, ...]] | None = None

  def __post_init__(self):
    unknown = [name for name in self.implementations if name not in IMPLEMENTATIONS]
    if unknown:
      raise ValueError(
          f"op {self.name!r} registers unknown implementation(s) {unknown}; "
          f"valid names: {', '.join(IMPLEMENTATIONS)}"
      )

  def __call__(self, *args, implementation: ImplementationArg = None, interpret: bool = False, **kwargs):
    _, out = self.dispatch(*args, implementation=implementation, interpret=interpret, **kwargs)
    return out

  def dispatch(self, *args, implementation: ImplementationArg = None, interpret: bool = False, **kwargs):
    """Runs the first implementation that serves the call; returns (its name, its output)."""
    failures = []
    for name in candidates(implementation, preference=self.preference):
      impl = self.implementations.get(name)
      if impl is None:
        reason = f"{self.name} has no {name} implementation"
      else:
        try:
          out = impl(*args, interpret=interpret, **kwargs)
        except NotImplementedError as e:
          reason = str(e) or type(e).__name__
        else:
          if failures:
            skipped = "; ".join(f"{n}: {r}" for n, r in failures)
            logger.info("%s: running %s after skipping %s", self.name, name, skipped)
          else:
            logger.info("%s: running %s", self.name, name)
          return name, out
      logger.info("%s: %s cannot serve this call: %s", self.name, name, reason)
      failures.append((name, reason))
    raise NoImplementationError(self.name, failures)

  def resolve(self, *args, implementation: ImplementationArg = None, interpret: bool = False, **kwargs) -> str:
    """Name of the implementation a call with these arguments would run.

    Traces the call abstractly with `jax.eval_shape` (arrays or `jax.ShapeDtypeStruct`s in
    `args`); nothing is compiled or executed. Raises what the call would raise.
    """
    chosen = []

    def trace(*traced_args):
      name, out = self.dispatch(*traced_args, implementation=implementation, interpret=interpret, **kwargs)
      chosen.append(name)
      return out

    jax.eval_shape(trace, *args)
    return chosen[0]

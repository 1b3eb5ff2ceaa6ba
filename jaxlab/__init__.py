"""jaxlab: research methods as pure JAX functions and sharded Flax models.

Nothing is imported eagerly: `import jaxlab` is cheap and has no side effects.
Import submodules directly (`from jaxlab.ops import rms_norm`) or use the lazy names below.
"""

import importlib

__version__ = "0.1.0"

# Every package and public module, lowest layer first (docs/ARCHITECTURE.md).
_LAZY_SUBMODULES = (
    "files", "quant_formats", "sharding", "testing",  # foundation
    "ops",
    "nn", "quant",
    "checkpoint", "data", "eval", "metrics", "train",
    "flow", "models", "moe", "splat", "video", "vlm",  # families
    "agent", "mmif", "mxmoe", "posttrain", "robosplat", "spatial", "camera", "view",  # pipelines
)


def __getattr__(name):
  if name in _LAZY_SUBMODULES:
    return importlib.import_module(f"jaxlab.{name}")
  raise AttributeError(f"module 'jaxlab' has no attribute {name!r}")


def __dir__():
  return sorted((*globals(), *_LAZY_SUBMODULES))

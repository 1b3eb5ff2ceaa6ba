"""Imports point one way, down the layers of docs/ARCHITECTURE.md; `import jaxlab.ops` loads front-ends only.

The import graph is read from the source with `ast` (nothing is imported), so a violation is
reported with the file and line that makes it.
"""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

# Lowest first. A module may import its own unit, any unit of a lower layer, and a unit of its
# own layer as long as the units of that layer import each other without a cycle.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("jaxlab", "jaxlab._compat", "jaxlab.files", "jaxlab.sharding", "jaxlab.testing",
                    "jaxlab.quant_formats")),
    ("kernels", ("kernels_pallas",)),
    ("ops", ("jaxlab.ops",)),
    ("layers and quantizers", ("jaxlab.nn", "jaxlab.quant")),
    ("training and data", ("jaxlab.data", "jaxlab.train", "jaxlab.eval", "jaxlab.checkpoint", "jaxlab.metrics")),
    ("families", ("jaxlab.models", "jaxlab.moe", "jaxlab.flow", "jaxlab.splat", "jaxlab.vlm", "jaxlab.video")),
    ("pipelines", ("jaxlab.agent", "jaxlab.mmif", "jaxlab.mxmoe", "jaxlab.posttrain", "jaxlab.robosplat",
                   "jaxlab.spatial", "jaxlab.camera", "jaxlab.view")),
    ("entry points", ("launch", "configs", "benchmarks")),
)
SCANNED_ROOTS = ("jaxlab", "kernels_pallas", "launch", "configs", "benchmarks")


def unit_of(module: str) -> str | None:
  """The longest unit name that is `module` or a package above it."""
  best = None
  for _, units in LAYERS:
    for unit in units:
      if (module == unit or module.startswith(unit + ".")) and (best is None or len(unit) > len(best)):
        best = unit
  return best


def layer_of(unit: str) -> int:
  return next(i for i, (_, units) in enumerate(LAYERS) if unit in units)


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(REPO).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def known_modules() -> set[str]:
  return {module_name(p) for root in SCANNED_ROOTS for p in (REPO / root).rglob("*.py")}


def imports_of(path: pathlib.Path, modules: set[str]) -> list[tuple[int, str]]:
  """(line, imported module) for every import of a scanned package in `path`, at any depth."""
  found = []
  for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
    if isinstance(node, ast.Import):
      found += [(node.lineno, alias.name) for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      for alias in node.names:
        submodule = f"{node.module}.{alias.name}"
        found.append((node.lineno, submodule if submodule in modules else node.module))
  return [(line, name) for line, name in found if name.split(".")[0] in SCANNED_ROOTS]


def import_graph() -> list[tuple[str, int, str, str]]:
  """(importing module, line, imported module, file) for every internal import."""
  modules = known_modules()
  edges = []
  for root in SCANNED_ROOTS:
    for path in sorted((REPO / root).rglob("*.py")):
      for line, target in imports_of(path, modules):
        edges.append((module_name(path), line, target, str(path.relative_to(REPO))))
  return edges


def layering_violations(edges) -> list[str]:
  problems = []
  unit_edges: dict[tuple[str, str], str] = {}
  for source, line, target, file in edges:
    source_unit, target_unit = unit_of(source), unit_of(target)
    if source_unit is None or target_unit is None:
      problems.append(f"{file}:{line}: {source} or {target} is in no layer; add it to LAYERS and ARCHITECTURE.md")
      continue
    if source_unit == target_unit:
      continue
    source_layer, target_layer = layer_of(source_unit), layer_of(target_unit)
    where = f"{file}:{line}: {source} imports {target}"
    if target_layer > source_layer:
      problems.append(f"{where}: upward ({LAYERS[source_layer][0]} -> {LAYERS[target_layer][0]})")
    elif target_layer == source_layer:
      unit_edges.setdefault((source_unit, target_unit), where)
  problems += [f"{where}: part of a cycle between {a} and {b}" for (a, b), where in unit_edges.items()
               if (b, a) in unit_edges]
  problems += family_cycles(unit_edges)
  return problems


def family_cycles(unit_edges: dict[tuple[str, str], str]) -> list[str]:
  """Cycles longer than two among the units of one layer (two-unit cycles are reported per edge)."""
  graph: dict[str, set[str]] = {}
  for a, b in unit_edges:
    graph.setdefault(a, set()).add(b)
  problems, state = [], {}

  def visit(node, stack):
    state[node] = "open"
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == "open" and len(stack) - stack.index(nxt) > 2:
        problems.append("cycle within a layer: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
      elif nxt not in state:
        visit(nxt, stack + [nxt])
    state[node] = "done"

  for node in sorted(graph):
    if node not in state:
      visit(node, [node])
  return problems


def test_every_import_points_down_the_layers():
  problems = layering_violations(import_graph())
  assert not problems, "imports against the layer rule (docs/ARCHITECTURE.md):\n" + "\n".join(problems)


# Imports that once ran upward or closed a cycle, as (importing module, imported module).
ONCE_UPWARD = (
    ("kernels_pallas.grouped_matmul.triton", "jaxlab.quant.experts"),
    ("kernels_pallas.grouped_matmul.triton", "jaxlab.ops.grouped_matmul_op.reference"),
    ("kernels_pallas.flow_guidance.triton", "jaxlab.flow.spectral"),
    ("jaxlab.ops.flow_guidance_op.reference", "jaxlab.flow.spectral"),
    ("jaxlab.ops.grouped_matmul_op.api", "jaxlab.quant.experts"),
    ("jaxlab.quant.mxmoe.model_layer", "jaxlab.moe.dispatch"),
    ("jaxlab.data.images.shapes", "jaxlab.vlm.v2pe"),
    ("jaxlab.nn.norm", "jaxlab.moe.models.norm"),
)
# Pairs of one layer that imported each other.
ONCE_CYCLIC = (
    ("jaxlab.models.qwen2.model", "jaxlab.moe.models.config"),
    ("jaxlab.vlm.vision", "jaxlab.moe.models.norm"),
)


@pytest.mark.parametrize("source,target", ONCE_UPWARD)
def test_the_check_refuses_each_import_that_once_ran_upward(source, target):
  assert layering_violations([(source, 1, target, "x.py")]), f"{source} -> {target} passed the layer check"


@pytest.mark.parametrize("source,target", ONCE_CYCLIC)
def test_the_check_refuses_each_cycle_that_once_joined_two_units(source, target):
  assert not layering_violations([(source, 1, target, "x.py")])  # One way is allowed...
  assert layering_violations([(source, 1, target, "x.py"), (target, 1, source, "y.py")])  # ...not both.


def test_a_module_outside_every_layer_is_reported():
  assert layering_violations([("jaxlab.newthing.mod", 1, "jaxlab.ops", "x.py")])


def test_a_three_family_cycle_is_reported():
  edges = [("jaxlab.models.a", 1, "jaxlab.moe", "x.py"), ("jaxlab.moe.b", 1, "jaxlab.vlm", "x.py"),
           ("jaxlab.vlm.c", 1, "jaxlab.models", "x.py")]
  assert any("cycle within a layer" in p for p in layering_violations(edges))


def test_import_ops_loads_front_ends_only():
  """`import jaxlab.ops` loads its own modules and the kernels' config dataclasses, nothing else of jaxlab."""
  code = ("import sys, jaxlab.ops; print('\\n'.join(sorted(m for m in sys.modules "
          "if m.split('.')[0] in ('jaxlab', 'kernels_pallas', 'scipy'))))")
  loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"}).stdout.split()
  allowed = lambda m: (m in ("jaxlab", "jaxlab._compat", "jaxlab.ops", "kernels_pallas")
                       or m.startswith(("jaxlab.ops.", "jaxlab.quant_formats"))
                       or (m.startswith("kernels_pallas.") and m.split(".")[-1] in ("config", "__init__"))
                       or m.count(".") == 1 and m.startswith("kernels_pallas."))
  extra = [m for m in loaded if not allowed(m)]
  assert not extra, f"import jaxlab.ops loaded more than front-ends: {extra}"
  kernels = [m for m in loaded if m.endswith((".triton", ".tiles", ".schedule"))]
  assert not kernels, f"import jaxlab.ops loaded kernel bodies: {kernels}"

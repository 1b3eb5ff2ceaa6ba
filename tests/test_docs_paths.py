"""Every repository path the docs name in backticks exists, so the code maps stay true to the code."""

import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
ROOTS = ("jaxlab/", "kernels_pallas/", "configs/", "launch/", "benchmarks/", "tests/", "docs/")
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "kernels_pallas").glob("*/README.md")])


def named_paths(text: str) -> list[str]:
  tokens = re.findall(r"`([^`\s]+)`", text)
  return [t.rstrip(",.") for t in tokens if t.startswith(ROOTS) and ("." in t.rsplit("/", 1)[-1] or t.endswith("/"))
          and not any(c in t for c in "<>*{}")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_paths_named_in_docs_exist(doc):
  missing = [p for p in named_paths(doc.read_text()) if not (REPO / p).exists()]
  assert not missing, f"{doc.relative_to(REPO)} names paths that do not exist: {missing}"

"""jaxlab.models.hf_common: importable on its own (no import cycle through the MoE package)."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["jaxlab.models.hf_common", "jaxlab.moe.models.config", "jaxlab.vlm.hf_io"])
def test_module_imports_first_in_a_fresh_interpreter(module):
  result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]

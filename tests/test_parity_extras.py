"""Parity and simulator tests skip without their extras; where the test command asks for them, they must run."""

import importlib
import os

import pytest


@pytest.mark.parametrize("module", ["torch", "transformers", "trl", "pybullet", "pyarrow"])
def test_parity_dependencies_are_installed_where_required(module):
  if os.environ.get("JAXLAB_REQUIRE_PARITY") != "1":
    pytest.skip("JAXLAB_REQUIRE_PARITY is not 1: parity tests may skip")
  importlib.import_module(module)  # An ImportError here fails the run instead of skipping the parity tests.

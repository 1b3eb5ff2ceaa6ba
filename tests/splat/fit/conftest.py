"""Fixtures shared by the fit tests."""

import pytest

from tests.splat.fit.tiny_scene import make_tiny_scene


@pytest.fixture(scope="session")
def tiny_scene():
  return make_tiny_scene()

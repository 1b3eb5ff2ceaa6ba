"""Helpers shared by jaxlab's tests and benchmarks (tolerances, readable comparisons)."""

from jaxlab.testing.numerics import TOLERANCES, assert_close, tolerance

__all__ = ["TOLERANCES", "assert_close", "tolerance"]

"""Benchmark scripts: one per op or method, each printing a table and writing JSON."""

"""Pallas kernels behind `jaxlab.ops`; no public API. One folder per kernel family."""

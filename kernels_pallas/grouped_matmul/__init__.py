"""Grouped (ragged) matmul kernels for mixture-of-experts layers."""

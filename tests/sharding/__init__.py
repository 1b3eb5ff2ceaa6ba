"""Tests for jaxlab.sharding."""

"""Picking the port the viewer serves on."""

from __future__ import annotations

import socket


def port_is_free(host: str, port: int) -> bool:
  """Whether a TCP server could bind `host:port` now."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
    try:
      probe.bind((host, port))
    except OSError:
      return False
  return True


def first_free_port(host: str, port: int, *, tries: int = 100) -> int:
  """`port` if it is free, else the next free one above it.

  Raises:
    OSError: none of `tries` ports from `port` on is free (names the range).
  """
  if not 0 < port < 65536:
    raise ValueError(f"port must be in 1..65535, got {port}")
  for candidate in range(port, min(port + tries, 65536)):
    if port_is_free(host, candidate):
      return candidate
  raise OSError(f"no free port on {host} in {port}..{min(port + tries, 65536) - 1}; pass another --port")

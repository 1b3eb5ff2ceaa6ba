"""Job-file writers for the engines that place multi-host runs: Slurm and SkyPilot.

Each writer is a pure function from a list of `SweepRun`s to file text, plus a thin function
that writes the text. The commands inside are `launch.run` invocations; the engine supplies
the coordinator address, process count and process index through its own variables.
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

DEFAULT_COORDINATOR_PORT = 8476


@dataclasses.dataclass(frozen=True)
class SweepRun:
  """One run of a sweep: its position, its config overrides and its own workdir."""

  index: int
  overrides: dict[str, Any]
  workdir: str


def multiline_command(first: str, continued: Sequence[str], indent: str = "    ") -> str:
  """`first` then one shell-ready word per line, joined with `\\` continuations."""
  return " \\\n".join([first, *(indent + word for word in continued)])

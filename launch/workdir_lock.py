"""One run per workdir: an advisory lock that the operating system drops when its holder dies.

Each process of a run locks `<workdir>/run.lock` (process 0) or `run.process_<i>.lock`
with `flock` and writes who holds it (process id, host, start time) into the file. A second
run on the same workdir finds the lock taken and refuses at once, naming the holder. A run
that is killed (even `kill -9`) loses its lock with its process, so nothing stays stuck; the
file itself stays and is reused.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import pathlib
import socket
from collections.abc import Mapping


class WorkdirBusyError(OSError):
  """Another live run holds the workdir."""


def lock_path(workdir: pathlib.Path, rank: int) -> pathlib.Path:
  return workdir / ("run.lock" if rank == 0 else f"run.process_{rank}.lock")


def launch_rank(process_id: int | None, environ: Mapping[str, str]) -> int:
  """This process's index within its run, known before jax starts (0 for a single process)."""
  if process_id is not None:
    return process_id
  for name in ("SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "TPU_WORKER_ID", "CLOUD_TPU_TASK_ID"):
    text = environ.get(name, "").strip()
    if text.isdigit():
      return int(text)
  return 0


def _describe_holder(path: pathlib.Path) -> str:
  try:
    holder = json.loads(path.read_text())
    return f"process {holder['pid']} on host {holder['host']}, started {holder['started']}"
  except (OSError, ValueError, KeyError, TypeError):
    return "a process that has not yet recorded itself"


class WorkdirLock:
  """Holds the workdir for this process until `release()` or the process ends."""

  def __init__(self, workdir: str | os.PathLike, rank: int = 0):
    self.path = lock_path(pathlib.Path(workdir), rank)
    self._fd: int | None = None

  def acquire(self) -> "WorkdirLock":
    """Takes the lock or raises WorkdirBusyError naming the holder; never waits."""
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        workdir = self.path.parent
        raise WorkdirBusyError(
            f"workdir {workdir} is in use by another run: {_describe_holder(self.path)} (lock file {self.path}). "
            "Wait for it to end, stop it (kill -TERM saves a checkpoint first), or choose another --workdir.") from None
      raise
    holder = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def __enter__(self) -> "WorkdirLock":
    return self.acquire()

  def __exit__(self, *exc_info) -> None:
    self.release()

"""Orbax checkpoints with validated restore.

A run folder holds `checkpoints/<step>/` written by an orbax `CheckpointManager` (async
save every N steps, keep the newest K). Each step stores two items: `state` (the train-state
pytree) and `data` (the input iterator's state, JSON). Restoring walks the steps newest
first; a step that is empty, partial or unreadable is reported by name and moved to
`checkpoints_rejected/` (kept, never deleted), and the newest good step is used. A step whose
state holds NaN or infinity, or whose data-iterator state the caller refuses, counts as
damaged in the same way.
"""

import dataclasses
import logging
import os
import pathlib
import shutil
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from jaxlab.files import NonFiniteError

log = logging.getLogger(__name__)

_STATE = "state"
_DATA = "data"


class CheckpointError(RuntimeError):
  """No usable checkpoint although some exist, or a save failed."""


@dataclasses.dataclass(frozen=True)
class ShapeMismatch:
  """A state leaf whose saved shape or dtype differs from the run's (None: absent on that side)."""

  path: str
  saved: str | None
  expected: str | None


def _path_name(path) -> str:
  parts = []
  for key in path:
    for attr in ("name", "key", "idx"):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
    else:
      parts.append(str(key))
  return "/".join(parts)


def _leaf_signatures(tree) -> dict[str, str]:
  """{"params/w": "float32[3,4]", ...} for arrays and array metadata alike."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  signature = lambda leaf: f"{getattr(leaf, 'dtype', '?')}[{','.join(str(d) for d in getattr(leaf, 'shape', ()))}]"
  return {_path_name(path): signature(leaf) for path, leaf in leaves}


@dataclasses.dataclass(frozen=True)
class Restored:
  step: int
  state: Any
  data_state: dict[str, Any] | None
  path: pathlib.Path
  rejected: tuple[tuple[int, str], ...]  # (step, reason) of newer steps that were unusable


def _require_finite_state(state: Any) -> None:
  """Raises NonFiniteError naming the floating leaves of `state` that hold NaN or infinity.

  Each process checks its own shards on the host, one shard at a time; the verdicts are
  combined so that every process sets the same steps aside.
  """
  leaves = [(path, x) for path, x in jax.tree_util.tree_flatten_with_path(state)[0]
            if jax.numpy.issubdtype(x.dtype, jax.numpy.inexact)]
  finite = np.array([all(np.isfinite(np.asarray(shard.data)).all() for shard in x.addressable_shards)
                     for _, x in leaves], bool)
  if jax.process_count() > 1:
    finite = np.all(multihost_utils.process_allgather(finite), axis=0)
  bad = [_path_name(path) for (path, _), ok in zip(leaves, finite) if not ok]
  if bad:
    raise NonFiniteError(f"the saved state holds NaN or infinity in {', '.join(bad[:3])}{' and more' if len(bad) > 3 else ''}")


def _is_primary() -> bool:
  return jax.process_index() == 0


class Checkpointer:
  """Saves and restores (train state, data-iterator state) pairs under `directory`."""

  def __init__(self, directory: str | os.PathLike, *, save_every: int, keep: int, async_save: bool = True):
    if save_every < 1:
      raise ValueError(f"save_every must be >= 1, got {save_every}")
    if keep < 1:
      raise ValueError(f"keep must be >= 1, got {keep}")
    self.save_every = save_every
    self.directory = pathlib.Path(directory).absolute()
    self.rejected_directory = self.directory.parent / f"{self.directory.name}_rejected"
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=1,  # the interval is applied in `save`, on exact multiples
        max_to_keep=keep,
        enable_async_checkpointing=async_save,
        create=True,
    )
    # Handlers named up front, so a fresh manager can read a step's metadata before any restore.
    handlers = {_STATE: ocp.StandardCheckpointHandler(), _DATA: ocp.JsonCheckpointHandler()}
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

  # ---- saving -------------------------------------------------------------------------

  def save(self, step: int, state: Any, data_state: dict[str, Any] | None = None, *, force: bool = False) -> bool:
    """Starts saving `state` at `step` if it is a multiple of `save_every` (or `force`).

    Returns whether a save was started. The save is asynchronous: `wait()` blocks on it.
    """
    if not force and step % self.save_every:
      return False
    if step in self._manager.all_steps():
      return False  # already saved (e.g. the final step of a run that resumed there)
    args = ocp.args.Composite(**{_STATE: ocp.args.StandardSave(state), _DATA: ocp.args.JsonSave(data_state or {})})
    return self._manager.save(step, args=args, force=True)

  def wait(self) -> None:
    """Blocks until pending async saves are on disk; re-raises their errors."""
    self._manager.wait_until_finished()
    self._manager.check_for_errors()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  # ---- restoring ----------------------------------------------------------------------

  def _problem_with(self, step: int) -> str | None:
    """A cheap structural check before reading any array."""
    path = self.directory / str(step)
    if not path.is_dir():
      return f"{path} is not a directory"
    if not any(path.iterdir()):
      return f"{path} is empty"
    for item in (_STATE, _DATA):
      item_path = path / item
      if not item_path.is_dir() or not any(item_path.iterdir()):
        return f"{item_path} is missing or empty (partial save)"
    return None

  def _restore_step(self, step: int, abstract_state: Any) -> tuple[Any, dict[str, Any]]:
    args = ocp.args.Composite(**{_STATE: ocp.args.StandardRestore(abstract_state), _DATA: ocp.args.JsonRestore()})
    restored = self._manager.restore(step, args=args)
    state = restored[_STATE]
    # Force every read now, so a truncated file fails here and not in the first step.
    jax.block_until_ready(state)
    _require_finite_state(state)
    return state, restored[_DATA]

  def shape_mismatches(self, abstract_state: Any) -> tuple[int, list[ShapeMismatch]] | None:
    """(step, leaves whose shape or dtype differ) for the newest step with readable metadata.

    Reads only metadata (no array), so a run can refuse a checkpoint its config cannot
    restore before it writes anything. None when there is no step with readable metadata.
    """
    self._manager.reload()
    expected = _leaf_signatures(abstract_state)
    for step in sorted(self._manager.all_steps(), reverse=True):
      if self._problem_with(step) is not None:
        continue
      try:
        metadata = self._manager.item_metadata(step)[_STATE]
        saved = _leaf_signatures(getattr(metadata, "tree", metadata))
      except Exception:  # unreadable metadata: restore_latest reports and sets the step aside
        continue
      if not saved:
        continue
      names = [n for n in expected if n in saved] + [n for n in saved if n not in expected] + [n for n in expected if n not in saved]
      mismatches = [ShapeMismatch(n, saved.get(n), expected.get(n)) for n in dict.fromkeys(names) if saved.get(n) != expected.get(n)]
      return step, mismatches
    return None

  def restore_latest(self, abstract_state: Any, *, accept: Callable[[Any, dict[str, Any]], None] | None = None) -> Restored | None:
    """Restores the newest usable step into the shapes/shardings of `abstract_state`.

    A step is unusable when its files are missing, partial or unreadable, when its state
    holds NaN or infinity (the train step never stores them, so such a step is damaged), or
    when `accept(state, data_state)` raises (e.g. the data iterator refuses its saved
    position). Unusable steps are reported and set aside, and the next older one is tried.

    Returns None when there is no checkpoint at all. Raises CheckpointError naming every
    step and its problem when checkpoints exist but none can be read.
    """
    self._manager.reload()
    steps = sorted(self._manager.all_steps(), reverse=True)
    if not steps:
      return None
    rejected: list[tuple[int, str]] = []
    for step in steps:
      problem = self._problem_with(step)
      if problem is None:
        try:
          state, data_state = self._restore_step(step, abstract_state)
          if accept is not None:
            accept(state, data_state or {})
        except Exception as e:  # orbax/tensorstore raise many types for unreadable files
          problem = f"unusable: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
      if problem is not None:
        log.error("Checkpoint step %d in %s is unusable (%s); trying the one before.", step, self.directory, problem)
        rejected.append((step, problem))
        continue
      self._set_aside(s for s, _ in rejected)
      return Restored(step=step, state=state, data_state=data_state or None, path=self.directory / str(step), rejected=tuple(rejected))
    listing = "; ".join(f"step {s}: {p}" for s, p in rejected)
    raise CheckpointError(f"no usable checkpoint in {self.directory} ({listing}). Nothing was deleted; move or repair them, or use a fresh workdir.")

  def _set_aside(self, steps) -> None:
    """Moves unusable steps out of the manager's way so their numbers can be saved again."""
    steps = list(steps)
    if not steps:
      return
    if _is_primary():
      self.rejected_directory.mkdir(parents=True, exist_ok=True)
      for step in steps:
        target = self.rejected_directory / f"{step}.{time.strftime('%Y%m%d-%H%M%S')}"
        shutil.move(str(self.directory / str(step)), str(target))
        log.warning("Moved unusable checkpoint step %d to %s (kept for inspection).", step, target)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("jaxlab_checkpoint_set_aside")
    self._manager.reload()

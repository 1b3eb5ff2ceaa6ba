"""Runs one job from a config file: `python -m launch.run --config=FILE[:variant] --workdir=DIR`.

The only place with process-wide side effects: it parses flags, initialises
`jax.distributed` when the run spans several processes, sets the number of fake CPU devices,
installs the SIGTERM handler and configures logging. Everything else is the task's job.
"""

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from launch.cli import check_workdir_writable, parse_run_args, resolve_config, should_initialize_distributed
from launch.config_loader import ConfigError
from launch.workdir_lock import WorkdirLock, launch_rank

log = logging.getLogger("launch.run")


class _FirstOccurrenceFilter(logging.Filter):
  """Lets each distinct message through once: ops log their choice on every trace."""

  def __init__(self):
    super().__init__()
    self._seen: set[str] = set()

  def filter(self, record: logging.LogRecord) -> bool:
    message = record.getMessage()
    if message in self._seen:
      return False
    self._seen.add(message)
    return True


def _configure_logging(workdir, process_index: int) -> None:
  fmt = f"%(asctime)s [p{process_index}] %(levelname)s %(name)s: %(message)s"
  handlers = [logging.StreamHandler(sys.stderr), logging.FileHandler(workdir / f"log.process_{process_index}.txt")]
  logging.basicConfig(level=logging.INFO, format=fmt, handlers=handlers, force=True)
  logging.getLogger("jaxlab.ops").addFilter(_FirstOccurrenceFilter())
  for noisy in ("absl", "orbax", "jax._src"):
    logging.getLogger(noisy).setLevel(logging.WARNING)


def _install_stop_handler() -> threading.Event:
  """SIGTERM (and SIGINT) ask the loop to checkpoint and exit instead of dying mid-step."""
  stop = threading.Event()

  def handler(signum, frame):
    del frame
    log.warning("Received %s: will save a checkpoint and stop after the current step.", signal.Signals(signum).name)
    stop.set()

  signal.signal(signal.SIGTERM, handler)
  signal.signal(signal.SIGINT, handler)
  return stop


def _fail(message: str) -> int:
  """The error as the last thing printed, in one paragraph; exit status 2."""
  logging.shutdown()  # flush log handlers first, so nothing follows the message
  sys.stderr.flush()
  print(f"launch.run: error: {message}", file=sys.stderr, flush=True)
  return 2


def main(argv: Sequence[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  try:
    args = parse_run_args(argv)
    config = resolve_config(args)
    workdir = check_workdir_writable(args.workdir)
    # Before jax starts: a second run on a busy workdir is refused at once.
    lock = WorkdirLock(workdir, launch_rank(args.process_id, os.environ)).acquire()
  except (ConfigError, OSError) as e:
    return _fail(str(e))
  try:
    return _run(args, config, workdir)
  except ConfigError as e:  # settings the task refuses, e.g. a checkpoint of other shapes
    return _fail(str(e))
  finally:
    lock.release()


def _run(args, config, workdir) -> int:
  import jax  # after flag parsing: a bad flag should not pay for jax start-up

  from jaxlab import files
  from launch.tasks import get_task
  from launch.validate import check_config

  if config.get("cpu_devices", 0):
    # Fake devices for the CPU backend only; harmless where GPUs or TPUs serve the run.
    jax.config.update("jax_num_cpu_devices", int(config.cpu_devices))
  if should_initialize_distributed(args, os.environ):
    kwargs = {}
    if args.coordinator_address:
      kwargs = dict(coordinator_address=args.coordinator_address, num_processes=args.num_processes, process_id=args.process_id)
    jax.distributed.initialize(**kwargs)

  _configure_logging(workdir, jax.process_index())
  stop = _install_stop_handler()
  task = get_task(config.task)
  check_config(config, task, jax.device_count())  # impossible settings fail here, naming the key
  log.info("Running task %r in %s on %d devices (%s).", config.task, workdir, jax.device_count(), jax.default_backend())

  result = task.run(config, workdir, stop_requested=stop.is_set)
  summary = {
      "status": result.status,
      "start_step": result.start_step,
      "final_step": result.final_step,
      **result.last_train_metrics,
      **result.last_eval_metrics,
  }
  if jax.process_index() == 0:
    files.write_text(workdir / "result.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
  log.info("Finished: %s", json.dumps(summary, sort_keys=True))
  return 0


if __name__ == "__main__":
  sys.exit(main())

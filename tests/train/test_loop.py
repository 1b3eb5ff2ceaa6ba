"""The training loop: resume after a stop equals an uninterrupted run; non-finite streaks stop it; image summaries."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlab.checkpoint import Checkpointer
from jaxlab.metrics import MetricWriter, read_metrics
from jaxlab.testing.tensorboard import read_images
from jaxlab.train import LoopSettings, NonFiniteLossError, TrainState, make_train_step, train_loop


class _Batches:
  """A deterministic batch stream with grain-style get_state/set_state."""

  def __init__(self, poison_from: int | None = None):
    self.index = 0
    self.poison_from = poison_from

  def __iter__(self):
    return self

  def __next__(self):
    rng = np.random.default_rng(self.index)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    if self.poison_from is not None and self.index >= self.poison_from:
      x[:] = np.nan
    self.index += 1
    return {"x": x, "y": x @ np.array([[1.0], [-2.0], [0.5]], np.float32)}

  def get_state(self):
    return {"index": self.index}

  def set_state(self, state):
    if not isinstance(state.get("index"), int) or state["index"] < 0:
      raise ValueError(f"not a position of this stream: {state!r}")  # as grain refuses a bad position
    self.index = state["index"]


def _loss_fn(params, batch, rng):
  del rng
  loss = jnp.mean((batch["x"] @ params["w"] - batch["y"]) ** 2)
  return loss, {}


def _run(workdir, *, num_steps, stop_at=None, batches=None, max_streak=3, progress=False, eval_every=0, images=None):
  optimizer = optax.adam(0.05)
  state = TrainState.create({"w": jnp.zeros((3, 1))}, optimizer)
  step = make_train_step(_loss_fn, optimizer)
  steps_done = []

  def stop_requested():
    steps_done.append(None)
    return stop_at is not None and len(steps_done) >= stop_at

  ckpt = Checkpointer(workdir / "checkpoints", save_every=4, keep=3)
  with MetricWriter(workdir) as writer:
    try:
      return train_loop(
          state,
          train_step=step,
          batches=batches or _Batches(),
          to_device=lambda b: jax.tree.map(jnp.asarray, b),
          rng=jax.random.key(0),
          settings=LoopSettings(num_steps=num_steps, log_every=2, eval_every=eval_every, max_nonfinite_streak=max_streak),
          checkpointer=ckpt,
          writer=writer,
          evaluate=lambda p: {"w_norm": jnp.linalg.norm(p["w"])},
          images=images,
          stop_requested=stop_requested,
          progress=progress,
      )
    finally:
      ckpt.close()


def test_stop_then_resume_equals_uninterrupted(tmp_path):
  straight = _run(tmp_path / "a", num_steps=12)
  assert straight.status == "completed" and straight.final_step == 12

  stopped = _run(tmp_path / "b", num_steps=12, stop_at=5)  # stop between checkpoints
  assert stopped.status == "preempted" and stopped.final_step == 5
  resumed = _run(tmp_path / "b", num_steps=12)
  assert resumed.start_step == 5 and resumed.status == "completed"
  np.testing.assert_array_equal(resumed.state.params["w"], straight.state.params["w"])
  np.testing.assert_array_equal(jax.tree.leaves(resumed.state.opt_state)[1], jax.tree.leaves(straight.state.opt_state)[1])

  steps = [r["step"] for r in read_metrics(tmp_path / "b" / "metrics.jsonl") if "train/loss" in r]
  assert steps == sorted(steps) and steps[-1] == 12
  assert resumed.last_eval_metrics["eval/w_norm"] > 0


def test_run_after_completion_does_no_more_steps(tmp_path):
  first = _run(tmp_path, num_steps=6)
  again = _run(tmp_path, num_steps=6)
  assert again.start_step == 6 and again.final_step == 6
  np.testing.assert_array_equal(again.state.params["w"], first.state.params["w"])


def test_nonfinite_streak_stops_the_run(tmp_path):
  with pytest.raises(NonFiniteLossError, match="3 steps in a row"):
    _run(tmp_path, num_steps=20, batches=_Batches(poison_from=4), max_streak=3)
  rows = read_metrics(tmp_path / "metrics.jsonl")
  assert any(r.get("train/nonfinite_steps_total", 0) > 0 for r in rows)


def test_isolated_nonfinite_steps_are_counted_not_fatal(tmp_path):
  class Flaky(_Batches):
    def __next__(self):
      batch = super().__next__()
      if self.index in (3, 7):
        batch["x"] = np.full_like(batch["x"], np.nan)
      return batch

  result = _run(tmp_path, num_steps=10, batches=Flaky(), max_streak=2)
  assert result.status == "completed"
  assert int(result.state.nonfinite_steps) == 2
  assert np.all(np.isfinite(result.state.params["w"]))


def test_progress_lines_when_output_is_not_a_terminal(tmp_path, caplog):
  # Under pytest stderr is not a terminal: no bar, so the loop logs a line every log_every steps.
  with caplog.at_level("INFO", logger="jaxlab.train"):
    _run(tmp_path, num_steps=6, progress=None)
  lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
  assert [line.split(" ")[1] for line in lines] == ["2/6", "4/6", "6/6"]
  assert all(" | loss " in line for line in lines)
  assert "steps/s | ETA " in lines[-1]
  assert any(r.getMessage().startswith("evaluation at step 6: w_norm ") for r in caplog.records)


def test_no_progress_lines_when_disabled(tmp_path, caplog):
  with caplog.at_level("INFO", logger="jaxlab.train"):
    _run(tmp_path, num_steps=4, progress=False)
  assert not [r for r in caplog.records if r.getMessage().startswith("step ")]


def test_resume_whose_saved_data_state_is_invalid_uses_the_previous_step(tmp_path, caplog):
  straight = _run(tmp_path / "a", num_steps=16)
  _run(tmp_path / "b", num_steps=12)  # checkpoints at 4, 8, 12
  data_file = tmp_path / "b" / "checkpoints" / "12" / "data" / "metadata"
  data_file.write_text('{"index": "garbage"}')
  resumed = _run(tmp_path / "b", num_steps=16)
  assert resumed.start_step == 8 and resumed.final_step == 16
  np.testing.assert_array_equal(resumed.state.params["w"], straight.state.params["w"])
  assert [p.name.split(".")[0] for p in (tmp_path / "b" / "checkpoints_rejected").iterdir()] == ["12"]


def test_images_are_drawn_at_each_evaluation(tmp_path):
  calls = []

  def images(params):
    calls.append(np.asarray(params["w"]).copy())
    weights = np.clip(np.abs(np.asarray(params["w"]))[:, 0], 0.0, 1.0)  # [3] in [0, 1]
    return {"weights": np.broadcast_to(weights, (2, 3)).astype(np.float32)}

  result = _run(tmp_path, num_steps=10, eval_every=4, images=images)
  assert len(calls) == 3  # steps 4 and 8, and the end (10)
  np.testing.assert_array_equal(calls[-1], result.state.params["w"])
  written = read_images(tmp_path / "tb")
  assert list(written) == ["eval/weights"]
  assert [step for step, _ in written["eval/weights"]] == [4, 8, 10]
  last = np.clip(np.abs(np.asarray(result.state.params["w"]))[:, 0], 0.0, 1.0)
  np.testing.assert_allclose(written["eval/weights"][-1][1][0, :, 0], last * 255, atol=0.5)

"""Checkpointer: round trips with shardings, and validated restore of damaged steps."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxlab.checkpoint import Checkpointer, CheckpointError


def _state(value: float):
  mesh = jax.make_mesh((8,), ("data",))
  sharded = NamedSharding(mesh, P("data"))
  return {
      "w": jax.device_put(jnp.full((64, 4), value, jnp.float32), sharded),
      "step": jnp.asarray(int(value), jnp.int32),
  }


def _abstract(state):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)


def _save_steps(directory, steps):
  ckpt = Checkpointer(directory, save_every=1, keep=10, async_save=True)
  for step in steps:
    assert ckpt.save(step, _state(step), {"next_index": step * 10})
  ckpt.close()


def _largest_file(step_dir: pathlib.Path) -> pathlib.Path:
  files = [p for p in (step_dir / "state").rglob("*") if p.is_file()]
  return max(files, key=lambda p: p.stat().st_size)


def test_round_trip_keeps_values_shardings_and_data_state(tmp_path):
  _save_steps(tmp_path / "ckpt", [1, 2])
  ckpt = Checkpointer(tmp_path / "ckpt", save_every=1, keep=10)
  restored = ckpt.restore_latest(_abstract(_state(0)))
  assert restored.step == 2 and restored.rejected == ()
  np.testing.assert_array_equal(restored.state["w"], np.full((64, 4), 2.0))
  assert restored.state["w"].sharding.spec == P("data")
  assert restored.data_state == {"next_index": 20}


def test_no_checkpoint_returns_none(tmp_path):
  assert Checkpointer(tmp_path / "empty", save_every=1, keep=1).restore_latest(_abstract(_state(0))) is None


def test_save_interval_and_keep(tmp_path):
  ckpt = Checkpointer(tmp_path / "ckpt", save_every=3, keep=2)
  saved = [s for s in range(1, 11) if ckpt.save(s, _state(s))]
  ckpt.close()
  assert saved == [3, 6, 9]
  assert Checkpointer(tmp_path / "ckpt", save_every=3, keep=2).steps() == [6, 9]


def test_truncated_newest_step_falls_back_to_previous_and_is_kept(tmp_path, caplog):
  _save_steps(tmp_path / "ckpt", [1, 2])
  victim = _largest_file(tmp_path / "ckpt" / "2")
  victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
  ckpt = Checkpointer(tmp_path / "ckpt", save_every=1, keep=10)
  restored = ckpt.restore_latest(_abstract(_state(0)))
  assert restored.step == 1
  np.testing.assert_array_equal(restored.state["w"], np.full((64, 4), 1.0))
  assert [s for s, _ in restored.rejected] == [2]
  assert "step 2" in caplog.text and "unusable" in caplog.text
  # Nothing is deleted: the damaged step is moved aside, and step 2 can be saved again.
  moved = list((tmp_path / "ckpt_rejected").iterdir())
  assert len(moved) == 1 and moved[0].name.startswith("2.")
  assert ckpt.save(2, _state(2), force=True)
  ckpt.close()


def test_empty_step_directory_is_refused(tmp_path):
  _save_steps(tmp_path / "ckpt", [1])
  (tmp_path / "ckpt" / "5").mkdir()
  ckpt = Checkpointer(tmp_path / "ckpt", save_every=1, keep=10)
  restored = ckpt.restore_latest(_abstract(_state(0)))
  assert restored.step == 1
  assert restored.rejected and restored.rejected[0][0] == 5 and "empty" in restored.rejected[0][1]


def test_all_steps_unusable_is_an_error_naming_them(tmp_path):
  _save_steps(tmp_path / "ckpt", [1])
  victim = _largest_file(tmp_path / "ckpt" / "1")
  victim.write_bytes(b"")
  ckpt = Checkpointer(tmp_path / "ckpt", save_every=1, keep=10)
  with pytest.raises(CheckpointError, match="step 1"):
    ckpt.restore_latest(_abstract(_state(0)))
  assert (tmp_path / "ckpt" / "1").is_dir()  # left in place


def test_bad_settings_are_rejected(tmp_path):
  with pytest.raises(ValueError, match="save_every"):
    Checkpointer(tmp_path, save_every=0, keep=1)
  with pytest.raises(ValueError, match="keep"):
    Checkpointer(tmp_path, save_every=1, keep=0)

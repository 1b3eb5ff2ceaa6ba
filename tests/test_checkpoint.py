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


def test_nonfinite_newest_step_falls_back_naming_the_leaf(tmp_path, caplog):
  ckpt = Checkpointer(tmp_path / "ckpt", save_every=1, keep=10, async_save=False)
  ckpt.save(1, _state(1))
  poisoned = _state(2)
  w = np.array(poisoned["w"])
  w[3, 1] = np.nan
  poisoned["w"] = jax.device_put(w, poisoned["w"].sharding)
  ckpt.save(2, poisoned)
  ckpt.close()
  restored = Checkpointer(tmp_path / "ckpt", save_every=1, keep=10).restore_latest(_abstract(_state(0)))
  assert restored.step == 1
  [(step, reason)] = restored.rejected
  assert step == 2 and "NaN or infinity in w" in reason
  assert any(p.name.startswith("2.") for p in (tmp_path / "ckpt_rejected").iterdir())


def test_step_whose_data_state_is_refused_falls_back(tmp_path):
  _save_steps(tmp_path / "ckpt", [1, 2])

  def accept(state, data_state):
    del state
    if data_state["next_index"] > 10:
      raise ValueError(f"next_index {data_state['next_index']} is out of range")

  restored = Checkpointer(tmp_path / "ckpt", save_every=1, keep=10).restore_latest(_abstract(_state(0)), accept=accept)
  assert restored.step == 1 and restored.data_state == {"next_index": 10}
  assert "next_index 20 is out of range" in restored.rejected[0][1]


def test_shape_mismatches_read_metadata_only(tmp_path):
  _save_steps(tmp_path / "ckpt", [1])
  ckpt = Checkpointer(tmp_path / "ckpt", save_every=1, keep=10)
  assert ckpt.shape_mismatches(_abstract(_state(0))) == (1, [])
  wider = {"w": jax.ShapeDtypeStruct((64, 8), jnp.float32), "step": jax.ShapeDtypeStruct((), jnp.int32),
           "extra": jax.ShapeDtypeStruct((2,), jnp.float32)}
  step, mismatches = ckpt.shape_mismatches(wider)
  assert step == 1
  assert [(m.path, m.saved, m.expected) for m in mismatches] == [("w", "float32[64,4]", "float32[64,8]"), ("extra", None, "float32[2]")]
  assert Checkpointer(tmp_path / "none", save_every=1, keep=1).shape_mismatches(wider) is None

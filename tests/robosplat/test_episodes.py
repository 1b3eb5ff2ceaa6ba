"""Tests for the LeRobot v2.1 episode dataset: writer, validating reader, grain frame source."""

import json
import os
import pickle

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import grain  # pylint: disable=g-import-not-at-top,wrong-import-position

from jaxlab.data import build_batches  # pylint: disable=g-import-not-at-top,wrong-import-position
from jaxlab.robosplat import episodes_layout  # pylint: disable=g-import-not-at-top,wrong-import-position
from jaxlab.robosplat.episodes import ChunkedFrameSource  # pylint: disable=g-import-not-at-top,wrong-import-position
from jaxlab.robosplat.episodes import ConcatSource  # pylint: disable=g-import-not-at-top,wrong-import-position
from jaxlab.robosplat.episodes import EpisodeDataset  # pylint: disable=g-import-not-at-top,wrong-import-position
from jaxlab.robosplat.episodes import EpisodeFormatError  # pylint: disable=g-import-not-at-top,wrong-import-position
from jaxlab.robosplat.episodes import EpisodeWriter  # pylint: disable=g-import-not-at-top,wrong-import-position

FPS = 22
CAMERAS = {"front": (8, 8), "wrist": (8, 8)}
STATE_NAMES = [f"joint{i}" for i in range(7)] + ["gripper_width"]
ACTION_NAMES = [f"joint{i}_target" for i in range(7)] + ["gripper_command"]
LENGTHS = (5, 3, 5)
TASKS = ("put the cube in the tray", "put the mug in the tray", "put the cube in the tray")


def _writer(root, **kwargs):
  return EpisodeWriter(root, fps=FPS, robot_type="panda", cameras=CAMERAS, state_names=STATE_NAMES,
                       action_names=ACTION_NAMES, **kwargs)


def _episode(seed, length):
  rng = np.random.default_rng(seed)
  return {
      "images": {camera: rng.integers(0, 256, (length, h, w, 3), dtype=np.uint8) for camera, (h, w) in CAMERAS.items()},
      "state_t8": rng.normal(size=(length, 8)).astype(np.float32),
      "action_t8": rng.normal(size=(length, 8)).astype(np.float32),
      "metadata": {"object": "cube", "object_pose": np.eye(4)[:3].tolist(), "yaw": 0.1 * seed,
                   "camera": {"fov_x": 1.0, "c2w": np.arange(16.0).reshape(4, 4)}, "lighting": None,
                   "texture": "wood", "source": seed},
  }


def _write(root, episodes, start=0, **kwargs):
  with _writer(root, **kwargs) as writer:
    for i, episode in enumerate(episodes):
      index = writer.add_episode(episode["images"], episode["state_t8"], episode["action_t8"],
                                 task=TASKS[(start + i) % len(TASKS)], metadata=episode["metadata"])
      assert index == start + i


@pytest.fixture(name="written")
def _written(tmp_path):
  root = tmp_path / "ds"
  episodes = [_episode(i, length) for i, length in enumerate(LENGTHS)]
  _write(root, episodes)
  return root, episodes


def _jsonl(path):
  return [json.loads(line) for line in path.read_text().splitlines()]


def _episode_file(root, episode_index):
  return root / "data" / "chunk-000" / f"episode_{episode_index:06d}.parquet"


def _rewrite(path, edit):
  table = pq.read_table(path)
  pq.write_table(edit(table), path)


def test_roundtrip_arrays_and_metadata(written):
  root, episodes = written
  dataset = EpisodeDataset(root)
  assert len(dataset) == 3 and dataset.num_frames == sum(LENGTHS)
  assert dataset.cameras == CAMERAS and dataset.fps == FPS
  assert dataset.state_names == STATE_NAMES and dataset.action_names == ACTION_NAMES
  for i, expected in enumerate(episodes):
    got = dataset.episode(i)
    for camera in CAMERAS:
      assert got["images"][camera].dtype == np.uint8
      np.testing.assert_array_equal(got["images"][camera], expected["images"][camera])
    np.testing.assert_array_equal(got["state"], expected["state_t8"])
    np.testing.assert_array_equal(got["action"], expected["action_t8"])
    assert got["state"].dtype == np.float32
    np.testing.assert_allclose(got["timestamp"], np.arange(LENGTHS[i]) / FPS, rtol=1e-6)
    np.testing.assert_array_equal(got["frame_index"], np.arange(LENGTHS[i]))
    assert got["task"] == TASKS[i] and got["episode_index"] == i
    assert got["metadata"] == json.loads(json.dumps(episodes_layout.jsonable(expected["metadata"], "m")))
    assert got["metadata"]["camera"]["c2w"][3] == [12.0, 13.0, 14.0, 15.0]


def test_meta_files(written):
  root, episodes = written
  info = json.loads((root / "meta" / "info.json").read_text())
  assert info["codebase_version"] == "v2.1" and info["robot_type"] == "panda" and info["fps"] == FPS
  assert (info["total_episodes"], info["total_frames"], info["total_tasks"], info["total_chunks"]) == (3, 13, 2, 1)
  assert info["chunks_size"] == 1000 and info["splits"] == {"train": "0:3"} and info["video_path"] is None
  assert info["data_path"] == "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
  features = info["features"]
  assert features["observation.images.front"] == {"dtype": "image", "shape": [8, 8, 3],
                                                  "names": ["height", "width", "channel"]}
  assert features["observation.state"] == {"dtype": "float32", "shape": [8], "names": STATE_NAMES}
  assert features["action"] == {"dtype": "float32", "shape": [8], "names": ACTION_NAMES}
  assert features["index"]["dtype"] == "int64" and features["timestamp"]["dtype"] == "float32"

  assert _jsonl(root / "meta" / "tasks.jsonl") == [{"task_index": 0, "task": TASKS[0]},
                                                   {"task_index": 1, "task": TASKS[1]}]
  lines = _jsonl(root / "meta" / "episodes.jsonl")
  assert [(e["episode_index"], e["tasks"], e["length"]) for e in lines] == [
      (i, [TASKS[i]], LENGTHS[i]) for i in range(3)]
  assert lines[1]["robosplat"]["texture"] == "wood" and lines[2]["robosplat"]["source"] == 2

  stats = _jsonl(root / "meta" / "episodes_stats.jsonl")
  assert [s["episode_index"] for s in stats] == [0, 1, 2]
  state_stats = stats[1]["stats"]["observation.state"]
  np.testing.assert_allclose(state_stats["min"], episodes[1]["state_t8"].min(0), rtol=1e-6)
  np.testing.assert_allclose(state_stats["std"], episodes[1]["state_t8"].std(0), rtol=1e-5)
  assert state_stats["count"] == [3]
  assert stats[2]["stats"]["index"]["min"] == [8] and stats[2]["stats"]["index"]["max"] == [12]
  image_stats = stats[0]["stats"]["observation.images.wrist"]
  assert np.shape(image_stats["mean"]) == (3, 1, 1)
  pixels = episodes[0]["images"]["wrist"].reshape(-1, 3) / 255.0
  np.testing.assert_allclose(np.reshape(image_stats["mean"], 3), pixels.mean(0), rtol=1e-9)
  np.testing.assert_allclose(np.reshape(image_stats["max"], 3), pixels.max(0))
  assert 0.0 <= np.min(image_stats["min"]) and np.max(image_stats["max"]) <= 1.0


def test_parquet_columns_are_lerobot_encoding(written):
  root, episodes = written
  table = pq.read_table(_episode_file(root, 1))
  schema = table.schema
  assert schema.field("observation.images.front").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
  assert schema.field("observation.state").type == pa.list_(pa.float32(), 8)
  assert schema.field("action").type == pa.list_(pa.float32(), 8)
  assert schema.field("timestamp").type == pa.float32()
  for key in ("frame_index", "episode_index", "index", "task_index"):
    assert schema.field(key).type == pa.int64()
  first = table.column("observation.images.front")[0].as_py()
  assert first["path"] is None and first["bytes"].startswith(b"\x89PNG")
  assert table.column("index").to_pylist() == [5, 6, 7]
  assert table.column("task_index").to_pylist() == [1, 1, 1]
  hf_features = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
  assert hf_features["observation.images.front"] == {"_type": "Image"}

  datasets = pytest.importorskip("datasets")
  hf_dataset = datasets.Dataset(table)  # features come from the schema metadata, as LeRobot loads them
  assert isinstance(hf_dataset.features["observation.images.wrist"], datasets.Image)
  row = hf_dataset[2]
  np.testing.assert_array_equal(np.asarray(row["observation.images.wrist"]), episodes[1]["images"]["wrist"][2])
  np.testing.assert_allclose(row["action"], episodes[1]["action_t8"][2])


def test_frame_by_global_index(written):
  root, episodes = written
  dataset = EpisodeDataset(root)
  for global_index, (episode_index, frame_index) in [(0, (0, 0)), (4, (0, 4)), (5, (1, 0)), (7, (1, 2)),
                                                     (8, (2, 0)), (12, (2, 4))]:
    assert dataset.locate(global_index) == (episode_index, frame_index)
    frame = dataset.frame(global_index)
    assert (frame["episode_index"], frame["frame_index"], frame["index"]) == (episode_index, frame_index,
                                                                              global_index)
    np.testing.assert_array_equal(frame["images"]["front"], episodes[episode_index]["images"]["front"][frame_index])
    np.testing.assert_array_equal(frame["state"], episodes[episode_index]["state_t8"][frame_index])
    np.testing.assert_array_equal(frame["action"], episodes[episode_index]["action_t8"][frame_index])
  with pytest.raises(IndexError, match="13"):
    dataset.frame(13)
  with pytest.raises(IndexError):
    dataset.episode(3)


def test_chunked_source_items_at_episode_boundaries(written):
  root, episodes = written
  source = ChunkedFrameSource(EpisodeDataset(root), chunk_size=3, cameras=["front", "wrist"])
  assert len(source) == 13
  actions0, actions1 = episodes[0]["action_t8"], episodes[1]["action_t8"]

  last = source[4]  # frame 4 of 5: one real action, then the last one repeated
  assert last["images"].shape == (2, 8, 8, 3) and last["images"].dtype == np.uint8
  np.testing.assert_array_equal(last["images"][1], episodes[0]["images"]["wrist"][4])
  np.testing.assert_array_equal(last["actions"], actions0[[4, 4, 4]])
  np.testing.assert_array_equal(last["action_mask"], [True, False, False])
  np.testing.assert_array_equal(last["state"], episodes[0]["state_t8"][4])

  first = source[5]  # first frame of episode 1: nothing leaks across the boundary
  np.testing.assert_array_equal(first["actions"], actions1[[0, 1, 2]])
  np.testing.assert_array_equal(first["action_mask"], [True, True, True])
  second = source[6]
  np.testing.assert_array_equal(second["actions"], actions1[[1, 2, 2]])
  np.testing.assert_array_equal(second["action_mask"], [True, True, False])
  assert second["actions"].dtype == np.float32 and second["action_mask"].dtype == bool

  wrist_only = ChunkedFrameSource(root, chunk_size=1, cameras=["wrist"])
  np.testing.assert_array_equal(wrist_only[12]["images"][0], episodes[2]["images"]["wrist"][4])
  with pytest.raises(ValueError, match="'side'"):
    ChunkedFrameSource(root, chunk_size=2, cameras=["side"])
  with pytest.raises(ValueError, match="chunk_size"):
    ChunkedFrameSource(root, chunk_size=0)
  with pytest.raises(IndexError):
    source[13]


def test_chunked_source_object_positions_hold_until_the_gripper_closes(tmp_path):
  placed, unplaced = _episode(0, 6), _episode(1, 4)
  placed["action_t8"][:, 7] = [1, 1, 1, 0, 0, 1]  # closes at step 3
  placed["metadata"]["object_xy_yaw"] = [0.5, -0.1, 0.3]
  _write(tmp_path / "ds", [placed, unplaced])
  source = ChunkedFrameSource(tmp_path / "ds", chunk_size=2, object_positions=True)
  masks = [bool(source[i]["object_mask"]) for i in range(10)]
  assert masks == [True, True, True, True, False, False] + [False] * 4  # the second episode has no position
  np.testing.assert_array_equal(source[0]["object_xy"], np.float32([0.5, -0.1]))
  assert source[0]["object_xy"].dtype == np.float32
  assert "object_xy" not in ChunkedFrameSource(tmp_path / "ds", chunk_size=2)[0]


def test_concat_source_reads_each_dataset_in_turn(written, tmp_path):
  root, episodes = written
  _write(tmp_path / "more", [_episode(7, 2)])
  first, second = ChunkedFrameSource(root, chunk_size=2), ChunkedFrameSource(tmp_path / "more", chunk_size=2)
  both = ConcatSource([first, second])
  assert len(both) == 13 + 2
  np.testing.assert_array_equal(both[12]["state"], first[12]["state"])
  np.testing.assert_array_equal(both[13]["state"], second[0]["state"])
  np.testing.assert_array_equal(both[14]["actions"], second[1]["actions"])
  clone = pickle.loads(pickle.dumps(both))
  np.testing.assert_array_equal(clone[14]["images"], both[14]["images"])
  with pytest.raises(IndexError, match="15"):
    both[15]
  with pytest.raises(ValueError, match="at least one source"):
    ConcatSource([])


def test_source_pickles_and_feeds_grain(written):
  root, _ = written
  source = ChunkedFrameSource(root, chunk_size=4)
  source[0]  # fill the cache: pickling must still work and drop it
  clone = pickle.loads(pickle.dumps(source))
  for key, value in source[9].items():
    np.testing.assert_array_equal(clone[9][key], value)

  batch = next(iter(grain.MapDataset.source(source).batch(4)))
  assert batch["images"].shape == (4, 2, 8, 8, 3) and batch["actions"].shape == (4, 4, 8)
  assert batch["state"].shape == (4, 8) and batch["action_mask"].shape == (4, 4)

  iterator = iter(build_batches(source, global_batch_size=4, seed=0, num_epochs=1, process_index=0,
                                process_count=1))
  batches = list(iterator)
  assert len(batches) == 3  # 13 frames -> 3 whole batches
  assert all(b["images"].shape == (4, 2, 8, 8, 3) and b["action_mask"].shape == (4, 4) for b in batches)
  # Every masked-out step repeats the last real action of its row.
  for b in batches:
    for actions, mask in zip(b["actions"], b["action_mask"]):
      real = int(mask.sum())
      assert mask[:real].all() and not mask[real:].any()
      np.testing.assert_array_equal(actions[real:], np.broadcast_to(actions[real - 1], actions[real:].shape))


def test_resume_appends(written):
  root, episodes = written
  extra = _episode(7, 4)
  with _writer(root, resume=True) as writer:
    assert writer.num_episodes == 3 and writer.num_frames == 13
    assert writer.add_episode(extra["images"], extra["state_t8"], extra["action_t8"], task="stack the blocks",
                              metadata={"source": "resumed"}) == 3
  dataset = EpisodeDataset(root)
  assert len(dataset) == 4 and dataset.num_frames == 17
  assert dataset.tasks == [TASKS[0], TASKS[1], "stack the blocks"]
  got = dataset.episode(3)
  np.testing.assert_array_equal(got["index"], np.arange(13, 17))
  np.testing.assert_array_equal(got["images"]["front"], extra["images"]["front"])
  assert got["metadata"] == {"source": "resumed"} and got["task"] == "stack the blocks"
  np.testing.assert_array_equal(dataset.episode(0)["state"], episodes[0]["state_t8"])
  info = json.loads((root / "meta" / "info.json").read_text())
  assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (4, 17, 3)

  with pytest.raises(FileExistsError, match="resume=True"):
    _writer(root)
  with pytest.raises(ValueError, match="fps"):
    EpisodeWriter(root, fps=10, robot_type="panda", cameras=CAMERAS, state_names=STATE_NAMES,
                  action_names=ACTION_NAMES, resume=True)
  with pytest.raises(ValueError, match="features"):
    EpisodeWriter(root, fps=FPS, robot_type="panda", cameras={"front": (8, 8)}, state_names=STATE_NAMES,
                  action_names=ACTION_NAMES, resume=True)


def test_refuses_foreign_non_empty_folder(tmp_path):
  (tmp_path / "notes.txt").write_text("keep me")
  for resume in (False, True):
    with pytest.raises(FileExistsError, match="not a dataset"):
      _writer(tmp_path, resume=resume)
  assert sorted(os.listdir(tmp_path)) == ["notes.txt"] and (tmp_path / "notes.txt").read_text() == "keep me"


def test_empty_dataset_is_valid(tmp_path):
  _writer(tmp_path / "new").close()
  dataset = EpisodeDataset(tmp_path / "new")
  assert len(dataset) == 0 and dataset.num_frames == 0
  assert len(ChunkedFrameSource(dataset, chunk_size=2)) == 0


def test_writer_rejects_bad_episodes(tmp_path):
  good = _episode(0, 3)
  writer = _writer(tmp_path / "ds")

  def add(**changes):
    args = {"images": good["images"], "state_t8": good["state_t8"], "action_t8": good["action_t8"], "task": "t",
            "metadata": {}}
    args.update(changes)
    writer.add_episode(**args)

  with pytest.raises(ValueError, match="lacks camera 'wrist'"):
    add(images={"front": good["images"]["front"]})
  with pytest.raises(ValueError, match=r"images\['front'\].*uint8"):
    add(images={**good["images"], "front": good["images"]["front"].astype(np.float32)})
  with pytest.raises(ValueError, match=r"state_t8 must be a real \[T, 8\]"):
    add(state_t8=good["state_t8"][:, :7])
  with pytest.raises(ValueError, match="action_t8 has 2 frames"):
    add(action_t8=good["action_t8"][:2])
  with pytest.raises(ValueError, match="action_t8 holds 1 non-finite"):
    add(action_t8=np.where(np.arange(24).reshape(3, 8) == 5, np.nan, good["action_t8"]))
  with pytest.raises(TypeError, match=r"metadata\['pose'\]"):
    add(metadata={"pose": object()})
  with pytest.raises(ValueError, match="task"):
    add(task="")
  assert writer.num_episodes == 0
  writer.close()
  assert len(EpisodeDataset(tmp_path / "ds")) == 0
  with pytest.raises(RuntimeError, match="closed"):
    add()


# --- validation of bad datasets -----------------------------------------------------------------


def _edit_info(root, **changes):
  path = root / "meta" / "info.json"
  info = json.loads(path.read_text())
  info.update(changes)
  path.write_text(json.dumps(info))


def _break_missing_info(root):
  os.remove(root / "meta" / "info.json")


def _break_missing_parquet(root):
  os.remove(_episode_file(root, 1))


def _break_row_count(root):
  _rewrite(_episode_file(root, 1), lambda t: t.slice(0, 2))


def _break_frame_index(root):
  def shift(table):
    column = table.schema.get_field_index("frame_index")
    return table.set_column(column, "frame_index", pa.array([1, 2, 3], pa.int64()))
  _rewrite(_episode_file(root, 1), shift)


def _break_missing_column(root):
  _rewrite(_episode_file(root, 1), lambda t: t.drop_columns(["action"]))


def _break_state_width(root):
  def narrow(table):
    state = np.zeros((3, 7), np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(state.reshape(-1)), 7)
    return table.set_column(table.schema.get_field_index("observation.state"), "observation.state", column)
  _rewrite(_episode_file(root, 1), narrow)


def _break_info_action_width(root):
  info = json.loads((root / "meta" / "info.json").read_text())
  info["features"]["action"]["shape"] = [7]
  (root / "meta" / "info.json").write_text(json.dumps(info))


def _break_truncated(root):
  path = _episode_file(root, 1)
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage, pattern", [
    (_break_missing_info, r"missing meta/info\.json"),
    (_break_missing_parquet, r"episode 1 is listed in meta/episodes\.jsonl.*episode_000001\.parquet is missing"),
    (_break_row_count, r"episode_000001\.parquet: episode 1 has 2 rows but meta/episodes\.jsonl lists length 3"),
    (_break_frame_index, r"episode_000001\.parquet: episode 1's frame_index column is not 0\.\.2"),
    (_break_missing_column, r"episode_000001\.parquet: episode 1 lacks the feature column 'action'"),
    (_break_state_width, r"episode_000001\.parquet: column 'observation\.state' rows have width \[7\], expected 8"),
    (_break_info_action_width, r"info\.json: feature 'action' has shape \[7\], expected \[8\]"),
    (lambda root: _edit_info(root, codebase_version="v2.0"), r"unsupported codebase_version 'v2\.0'"),
    (lambda root: _edit_info(root, total_frames=12), r"total_frames is 12 but .* hold 13"),
    (_break_truncated, r"episode_000001\.parquet: episode 1's parquet file is unreadable, likely partial"),
])
def test_bad_dataset_named(written, damage, pattern):
  root, _ = written
  damage(root)
  with pytest.raises(EpisodeFormatError, match=pattern):
    EpisodeDataset(root)


def test_temp_files_are_ignored_with_warning(written):
  root, _ = written
  (root / "data" / "chunk-000" / ".episode_000003.parquet.0a1b2c.tmp").write_bytes(b"PAR1 half written")
  (root / "meta" / ".info.json.0a1b2c.tmp").write_text("{")
  with pytest.warns(UserWarning, match="2 temporary file"):
    dataset = EpisodeDataset(root)
  assert len(dataset) == 3 and dataset.num_frames == 13


def test_interrupted_commit_leaves_consistent_dataset(written, monkeypatch):
  root, _ = written
  writer = _writer(root, resume=True)
  extra = _episode(9, 2)
  real_write_jsonl = episodes_layout.write_jsonl

  def crash_on_episodes(root_, relpath, lines):
    if relpath == episodes_layout.EPISODES_PATH:
      raise OSError("disk full")
    real_write_jsonl(root_, relpath, lines)

  monkeypatch.setattr(episodes_layout, "write_jsonl", crash_on_episodes)
  with pytest.raises(OSError, match="disk full"):
    writer.add_episode(extra["images"], extra["state_t8"], extra["action_t8"], task="new task")
  monkeypatch.undo()

  # The parquet file and the stats line were written, the commit record was not.
  assert _episode_file(root, 3).exists()
  with pytest.warns(UserWarning) as record:
    dataset = EpisodeDataset(root)
  assert len(dataset) == 3 and dataset.num_frames == 13
  messages = " | ".join(str(w.message) for w in record)
  assert "episodes_stats.jsonl: ignoring 1 entries past the 3" in messages
  assert "tasks.jsonl: ignoring 1 entries past the 2" in messages
  assert "not listed in meta/episodes.jsonl (an interrupted write): data/chunk-000/episode_000003.parquet" in messages

  with pytest.warns(UserWarning, match="replacing"):
    assert writer.add_episode(extra["images"], extra["state_t8"], extra["action_t8"], task="new task") == 3
  writer.close()
  dataset = EpisodeDataset(root)
  assert len(dataset) == 4 and dataset.tasks[-1] == "new task"
  np.testing.assert_array_equal(dataset.episode(3)["action"], extra["action_t8"])
  assert len(_jsonl(root / "meta" / "episodes_stats.jsonl")) == 4


def test_uncommitted_meta_lines_are_ignored(written):
  root, _ = written
  info_before = (root / "meta" / "info.json").read_text()
  extra = _episode(5, 2)
  with _writer(root, resume=True) as writer:
    writer.add_episode(extra["images"], extra["state_t8"], extra["action_t8"], task=TASKS[0])
  (root / "meta" / "info.json").write_text(info_before)  # as if the crash came before info.json's rename
  with pytest.warns(UserWarning) as record:
    dataset = EpisodeDataset(root)
  assert len(dataset) == 3
  messages = " | ".join(str(w.message) for w in record)
  assert "episodes.jsonl: ignoring 1 entries past the 3 recorded" in messages
  assert "episode_000003.parquet" in messages
  with pytest.warns(UserWarning):
    writer = _writer(root, resume=True)
  assert writer.num_episodes == 3
  writer.close()  # rewrites the meta files from the committed state
  assert len(_jsonl(root / "meta" / "episodes.jsonl")) == 3

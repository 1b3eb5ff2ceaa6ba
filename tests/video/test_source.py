"""Tests for the training-record source (`jaxlab.video.source`)."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from jaxlab.video.clip import ClipError
from jaxlab.video.source import VideoClipSource
from jaxlab.video.synthetic import generate_clip

SHAPE = {"num_frames": 4, "height": 16, "width": 16}


@pytest.fixture(scope="module")
def source():
  return VideoClipSource.generated(5, seed=11, modalities=("rgb", "depth", "normal"), num_people=(2, 3),
                                   num_identities=3, **SHAPE)


def _assert_same(a, b):
  assert a.keys() == b.keys()
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_records_have_fixed_shapes_and_ranges(source):
  assert len(source) == 5
  record = source[2]
  f, h, w = SHAPE["num_frames"], SHAPE["height"], SHAPE["width"]
  expected = {"video": ((f, h, w, 7), np.float32), "reference": ((h, w, 3), np.float32),
              "pose_maps": ((f, h, w, 3), np.float32), "plucker": ((f, h, w, 6), np.float32),
              "identity": ((f, h, w), np.int32), "seed": ((), np.int32), "index": ((), np.int32)}
  assert {k: (np.shape(v), np.asarray(v).dtype) for k, v in record.items()} == expected
  assert record["index"] == 2 and record["seed"] >= 0
  assert -1 <= record["video"].min() and record["video"].max() <= 1
  assert -1 <= record["reference"].min() and record["reference"].max() <= 1
  assert record["pose_maps"].max() > 0 and record["pose_maps"].min() >= 0
  assert set(np.unique(record["identity"])) <= {0, 1, 2, 3} and record["identity"].max() >= 1
  np.testing.assert_allclose(record["plucker"][0, ..., :3], 0.0, atol=1e-6)  # relative to frame 0
  np.testing.assert_allclose(np.linalg.norm(record["plucker"][..., 3:], axis=-1), 1.0, atol=1e-5)
  # The record's parts are those of the clip behind it.
  clip = source.clip(2)
  np.testing.assert_allclose(record["video"][..., :3], 2 * clip.rgb_fhwc - 1, atol=1e-6)
  np.testing.assert_array_equal(record["identity"], clip.masks_fhw)
  np.testing.assert_allclose(record["video"][..., 4:], clip.normal_fhwc)


def test_elements_are_pure_functions_of_seed_and_index(source):
  again = VideoClipSource.generated(5, seed=11, modalities=("rgb", "depth", "normal"), num_people=(2, 3),
                                    num_identities=3, **SHAPE)
  _assert_same(source[1], again[1])
  _assert_same(source[4], source[4])
  assert not np.array_equal(source[0]["video"], source[1]["video"])
  # The record's seed regenerates its clip.
  record = source[3]
  clip = generate_clip(int(record["seed"]), num_people=(2, 3), num_identities=3, **SHAPE)
  np.testing.assert_array_equal(record["identity"], clip.masks_fhw)
  other_seed = VideoClipSource.generated(5, seed=12, modalities=("rgb", "depth", "normal"), num_people=(2, 3),
                                         num_identities=3, **SHAPE)
  assert not np.array_equal(other_seed[1]["video"], source[1]["video"])
  with pytest.raises(IndexError):
    source[5]


def test_pickling_round_trip_gives_the_same_elements(source):
  copy = pickle.loads(pickle.dumps(source))
  assert len(pickle.dumps(source)) < 2000  # parameters only, no rendered data
  _assert_same(copy[3], source[3])
  given = VideoClipSource.from_clips([generate_clip(0, **SHAPE)], ("rgb", "depth"))
  _assert_same(pickle.loads(pickle.dumps(given))[0], given[0])


def test_from_clips_serves_the_clips_and_refuses_missing_modalities():
  clips = [generate_clip(s, **SHAPE) for s in (0, 1)]
  source = VideoClipSource.from_clips(clips, ("rgb", "depth"))
  record = source[1]
  assert record["video"].shape == (4, 16, 16, 4) and record["seed"] == -1 and record["index"] == 1
  np.testing.assert_array_equal(record["identity"], clips[1].masks_fhw)
  np.testing.assert_allclose(record["reference"], 2 * clips[1].reference_hwc - 1, atol=1e-6)
  no_depth = dataclasses.replace(clips[0], depth_fhw=None, name="folder_without_depth")
  with pytest.raises(ClipError, match="folder_without_depth.*depth"):
    VideoClipSource.from_clips([clips[1], no_depth], ("rgb", "depth"))
  VideoClipSource.from_clips([no_depth], ("rgb", "normal"))  # normals alone are there
  with pytest.raises(ValueError, match="one shape"):
    VideoClipSource.from_clips([clips[0], generate_clip(0, num_frames=3, height=16, width=16)])
  with pytest.raises(ValueError, match="unknown modality"):
    VideoClipSource.from_clips(clips, ("rgb", "flow"))

"""Tests for `load_dataset`'s format detection and argument checks."""

import pytest

from jaxlab.splat.datasets import FORMATS, detect_format, load_dataset
from tests.splat.datasets import writers


def test_each_format_is_detected_from_its_files(tmp_path):
  writers.write_blender(tmp_path / "blender", {"train": 1})
  writers.write_json(tmp_path / "nerfstudio" / "transforms.json", {"frames": []})
  specs = writers.colmap_images(2)
  writers.write_colmap_text(tmp_path / "colmap" / "sparse" / "0", specs)
  writers.write_colmap_binary(tmp_path / "colmap_flat", specs)
  assert detect_format(tmp_path / "blender") == "blender"
  assert detect_format(tmp_path / "nerfstudio") == "nerfstudio"
  assert detect_format(tmp_path / "nerfstudio" / "transforms.json") == "nerfstudio"
  assert detect_format(tmp_path / "colmap") == "colmap"
  assert detect_format(tmp_path / "colmap_flat") == "colmap"
  with pytest.raises(ValueError, match=r"is a Blender split file; pass the folder holding it"):
    detect_format(tmp_path / "blender" / "transforms_train.json")


def test_explicit_format_overrides_detection(tmp_path):
  writers.write_blender(tmp_path, {"train": 2})
  with pytest.raises(FileNotFoundError, match=r"no COLMAP model"):
    load_dataset(tmp_path, format="colmap")


def test_unknown_folder_and_missing_path_are_named(tmp_path):
  message = r"cannot tell the dataset format of .*transforms_train\.json.*transforms\.json \(nerfstudio\).*cameras\.bin"
  with pytest.raises(ValueError, match=message):
    load_dataset(tmp_path)
  with pytest.raises(FileNotFoundError, match=r"dataset not found: .*nowhere"):
    load_dataset(tmp_path / "nowhere")


@pytest.mark.parametrize("kwargs,message", [
    (dict(format="ply"), r"format must be one of \('auto', 'blender', 'nerfstudio', 'colmap'\); got 'ply'"),
    (dict(split="validation"), r"split must be one of \('train', 'test', 'val', 'all'\)"),
    (dict(downscale=0), r"downscale must be a positive int"),
    (dict(background=(2.0, 0.0, 0.0)), r"background must be three floats in \[0, 1\]"),
    (dict(test_every=0), r"test_every must be a positive int"),
])
def test_bad_arguments_name_the_valid_choices(tmp_path, kwargs, message):
  writers.write_blender(tmp_path, {"train": 1})
  with pytest.raises(ValueError, match=message):
    load_dataset(tmp_path, **kwargs)
  assert "auto" in FORMATS

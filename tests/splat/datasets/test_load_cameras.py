"""`load_cameras`: the same cameras and names as `load_dataset`, without reading a pixel."""

import numpy as np
import pytest

from jaxlab.splat.datasets import load_cameras, load_dataset
from jaxlab.splat.datasets import views as views_module
from tests.splat.datasets import writers
from tests.splat.datasets.test_nerfstudio import _write as write_nerfstudio


def _write(root, data_format):
  if data_format == "blender":
    writers.write_blender(root, {"train": 3, "test": 2})
  elif data_format == "nerfstudio":
    write_nerfstudio(root)
  else:
    specs = writers.colmap_images(5)
    writers.write_colmap_images_folder(root, specs)
    writers.write_colmap_binary(root / "sparse" / "0", specs)


def _no_pixels(path):
  raise AssertionError(f"read the pixels of {path}")


@pytest.mark.parametrize("data_format", ["blender", "nerfstudio", "colmap"])
def test_cameras_and_names_equal_load_dataset_without_reading_pixels(tmp_path, monkeypatch, data_format):
  _write(tmp_path, data_format)
  for split in ("train", "test", "all"):
    scene = load_dataset(tmp_path, split=split, test_every=2)
    with monkeypatch.context() as patch:
      patch.setattr(views_module, "read_image", _no_pixels)
      cameras, names = load_cameras(tmp_path, split=split, test_every=2)
      with pytest.raises(AssertionError, match="read the pixels"):  # the patch does catch pixel reads
        load_dataset(tmp_path, split=split, test_every=2)
    assert names == scene.names and len(names) > 0
    assert (cameras.width, cameras.height) == (scene.width, scene.height)
    for field in ("fx", "fy", "cx", "cy", "world_to_camera"):
      np.testing.assert_allclose(np.asarray(getattr(cameras, field)), np.asarray(getattr(scene.cameras, field)),
                                 rtol=1e-6, err_msg=f"{data_format}/{split}: {field}")


def test_full_resolution_intrinsics_whatever_the_fit_downscales_to(tmp_path):
  _write(tmp_path, "colmap")
  half = load_dataset(tmp_path, split="all", downscale=2)
  cameras, _ = load_cameras(tmp_path, split="all")
  assert (cameras.width, cameras.height) == (writers.WIDTH, writers.HEIGHT)
  np.testing.assert_allclose(np.asarray(cameras.fx), 2 * np.asarray(half.cameras.fx), rtol=1e-6)


def test_bad_format_and_split_are_named(tmp_path):
  _write(tmp_path, "blender")
  with pytest.raises(ValueError, match=r"format must be one of"):
    load_cameras(tmp_path, format="ply")
  with pytest.raises(ValueError, match=r"split must be one of"):
    load_cameras(tmp_path, split="validation")
  with pytest.raises(FileNotFoundError, match=r"transforms_val\.json"):
    load_cameras(tmp_path, split="val")

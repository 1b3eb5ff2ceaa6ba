"""Photo crops: offline colour photos, deterministic records, value ranges, exact area resize."""

import pickle

import grain
import numpy as np
import pytest

from jaxlab.data.images import PHOTO_NAMES, PhotoCropSource, area_resize, load_photos


@pytest.fixture(scope="module")
def source():
  return PhotoCropSource(16, seed=3, length=1000)


def test_every_photo_loads_as_colour_in_unit_range():
  photos = load_photos()
  assert len(photos) == len(PHOTO_NAMES)
  for name, photo in zip(PHOTO_NAMES, photos):
    assert photo.dtype == np.float32 and photo.ndim == 3 and photo.shape[-1] == 3, name
    assert 0.0 <= photo.min() and photo.max() <= 1.0 and photo.max() > 0.5, name
    # Colour, not grey stored as RGB: the channels differ somewhere.
    assert np.abs(photo[..., 0] - photo[..., 1]).max() > 0.05, name
  assert load_photos(["coffee"])[0] is photos[PHOTO_NAMES.index("coffee")]  # cached


def test_records_are_deterministic_per_seed_and_index(source):
  again = PhotoCropSource(16, seed=3, length=1000)
  for index in (0, 7, 999):
    a, b = source[index], again[index]
    np.testing.assert_array_equal(a["image"], b["image"])
    assert a["label"] == b["label"]
  other_seed = PhotoCropSource(16, seed=4, length=1000)
  assert not np.array_equal(source[7]["image"], other_seed[7]["image"])


def test_record_format_and_ranges(source):
  labels = []
  for index in range(40):
    record = source[index]
    assert record["image"].shape == (16, 16, 3) and record["image"].dtype == np.float32
    assert record["label"].dtype == np.int32 and record["label"].shape == ()
    assert -1.0 <= record["image"].min() and record["image"].max() <= 1.0
    labels.append(int(record["label"]))
  assert min(labels) >= 0 and max(labels) < len(PHOTO_NAMES)
  assert len(set(labels)) >= 4  # uniform over 7 photos: 40 draws reach several of them
  assert len(source) == 1000


def test_different_indices_give_different_crops(source):
  images = np.stack([source[i]["image"] for i in range(10)])
  for i in range(10):
    for j in range(i + 1, 10):
      assert not np.array_equal(images[i], images[j])


def test_labels_index_the_names_given():
  only = PhotoCropSource(8, names=("rocket", "astronaut"), length=50)
  labels = {int(only[i]["label"]) for i in range(50)}
  assert labels == {0, 1}


def test_full_crop_of_a_photo_is_its_area_downscale():
  # min_crop_fraction = 1: the crop is the largest square; check it against a direct box filter.
  src = PhotoCropSource(8, names=("astronaut",), min_crop_fraction=1.0, length=8)
  photo = load_photos(["astronaut"])[0].astype(np.float64)  # 512 x 512: the crop is the whole photo
  expected = photo.reshape(8, 64, 8, 64, 3).mean(axis=(1, 3)) * 2 - 1
  flipped = []
  for index in range(8):
    image = src[index]["image"]
    flipped.append(bool(np.allclose(image, expected[:, ::-1], atol=1e-6)))
    assert flipped[-1] or np.allclose(image, expected, atol=1e-6)
  assert 0 < sum(flipped) < 8  # both orientations occur


def test_area_resize_matches_block_means_and_fractional_overlaps():
  image = np.random.default_rng(0).random((12, 12, 2))
  np.testing.assert_allclose(area_resize(image, 4), image.reshape(4, 3, 4, 3, 2).mean(axis=(1, 3)), atol=1e-12)
  np.testing.assert_allclose(area_resize(image, 12), image, atol=1e-12)
  small = np.random.default_rng(1).random((3, 3, 1))
  # 3 -> 2: output (0, 0) covers [0, 1.5) x [0, 1.5), i.e. weights 1, 1/2, 1/2, 1/4 over area 2.25.
  expected = (small[0, 0] + 0.5 * small[0, 1] + 0.5 * small[1, 0] + 0.25 * small[1, 1]) / 2.25
  np.testing.assert_allclose(area_resize(small, 2)[0, 0], expected, atol=1e-12)


def test_works_with_grain_and_pickles(source):
  assert isinstance(source, grain.sources.RandomAccessDataSource)
  dataset = grain.MapDataset.source(source)
  np.testing.assert_array_equal(dataset[5]["image"], source[5]["image"])
  restored = pickle.loads(pickle.dumps(source))
  np.testing.assert_array_equal(restored[5]["image"], source[5]["image"])
  assert len(pickle.dumps(source)) < 10_000  # arguments only, not the photos


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(size=3), ValueError, "size"),
    (dict(size=16, min_crop_fraction=0.0), ValueError, "min_crop_fraction"),
    (dict(size=16, min_crop_fraction=1.5), ValueError, "min_crop_fraction"),
    (dict(size=16, names=()), ValueError, "at least one"),
    (dict(size=16, names=("camera",)), ValueError, "Unknown photo names"),
    (dict(size=16, names="astronaut"), TypeError, "sequence"),
    (dict(size=16, seed=-1), ValueError, "seed"),
    (dict(size=16, length=0), ValueError, "length"),
])
def test_bad_arguments_are_rejected(kwargs, error, match):
  with pytest.raises(error, match=match):
    PhotoCropSource(**kwargs)


def test_out_of_range_index_raises(source):
  with pytest.raises(IndexError):
    source[1000]
  with pytest.raises(IndexError):
    source[-1]

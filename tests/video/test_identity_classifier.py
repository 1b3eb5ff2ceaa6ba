"""Identity consistency: nearest-centroid appearance classification of each identity's mask region."""

import numpy as np
import pytest

from jaxlab.video.identity_classifier import IdentityClassifier, identity_consistency, region_features

# Shirt colours of identities 1..3 and the grey background.
COLOURS = np.array([[0.85, 0.15, 0.1], [0.1, 0.75, 0.2], [0.15, 0.2, 0.9]])
BACKGROUND = 0.5


def _scene(num_frames=4, height=12, width=24, seed=0):
  """Three 4 x 5 blobs walking right, each in its colour with a little noise: frames [F, H, W, 3], masks [F, H, W]."""
  rng = np.random.default_rng(seed)
  masks = np.zeros((num_frames, height, width), np.int32)
  for f in range(num_frames):
    for identity, (row, col) in enumerate([(1, 0), (7, 4), (2, 12)], start=1):
      masks[f, row:row + 4, col + 2 * f:col + 2 * f + 5] = identity
  return _paint(masks, rng), masks


def _paint(masks, rng, colours=COLOURS):
  frames = np.full(masks.shape + (3,), BACKGROUND)
  for identity, colour in enumerate(colours, start=1):
    frames[masks == identity] = colour
  return np.clip(frames + rng.uniform(-0.05, 0.05, frames.shape), 0.0, 1.0)


def test_region_features_by_hand():
  # Identity 1: two pixels black, two white; identity 2: one mid-grey pixel. bins = 2: 8 cells, index r*4 + g*2 + b.
  frames = np.array([[[[0, 0, 0], [0, 0, 0], [1, 1, 1], [1, 1, 1], [0.6, 0.4, 0.6]]]], float)
  masks = np.array([[[1, 1, 1, 1, 2]]], np.int32)
  features, counts = region_features(frames, masks, num_identities=3, bins=2)
  assert features.shape == (1, 3, 8 + 3)
  np.testing.assert_array_equal(counts, [[4, 1, 0]])
  np.testing.assert_allclose(features[0, 0], [0.5, 0, 0, 0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5])
  np.testing.assert_allclose(features[0, 1], [0, 0, 0, 0, 0, 1, 0, 0, 0.6, 0.4, 0.6])  # cell (1, 0, 1) = 5
  np.testing.assert_array_equal(features[0, 2], 0.0)


def test_ground_truth_frames_are_consistent():
  frames, masks = _scene()
  classifier = IdentityClassifier.fit(frames[:1], masks[:1], 3)  # the reference frame only
  np.testing.assert_array_equal(classifier.predict(frames, masks), np.tile([1, 2, 3], (4, 1)))
  assert identity_consistency(classifier, frames, masks) == {"accuracy": 1.0, "num_regions": 12}


def test_swapped_appearance_drops_accuracy():
  frames, masks = _scene()
  classifier = IdentityClassifier.fit(frames, masks, 3)
  # From frame 2 on, identities 1 and 2 wear each other's colours.
  swapped = frames.copy()
  swapped[2:] = _paint(masks[2:], np.random.default_rng(1), COLOURS[[1, 0, 2]])
  predicted = classifier.predict(swapped, masks)
  np.testing.assert_array_equal(predicted, [[1, 2, 3], [1, 2, 3], [2, 1, 3], [2, 1, 3]])
  assert identity_consistency(classifier, swapped, masks)["accuracy"] == pytest.approx(8 / 12)
  after = np.array([False, False, True, True])
  assert identity_consistency(classifier, swapped, masks, after) == {"accuracy": pytest.approx(2 / 6),
                                                                     "num_regions": 6}


def test_histogram_separates_identities_of_equal_mean_colour():
  # Identity 1 is a black-and-white check, identity 2 plain grey: the same mean colour (0.5).
  masks = np.zeros((2, 4, 8), np.int32)
  masks[:, :, :4], masks[:, :, 4:] = 1, 2
  frames = np.full(masks.shape + (3,), 0.5)
  check = (np.indices((4, 4)).sum(axis=0) % 2).astype(float)[..., None]
  frames[:, :, :4] = check
  classifier = IdentityClassifier.fit(frames[:1], masks[:1], 2)
  np.testing.assert_allclose(classifier.centroids_nd[:, -3:], 0.5)  # means equal: only the histogram differs
  frames[1, :, :4], frames[1, :, 4:] = 0.5, check  # frame 1: appearances exchanged
  np.testing.assert_array_equal(classifier.predict(frames, masks), [[1, 2], [2, 1]])


def test_small_regions_are_skipped_and_unseen_identities_never_predicted():
  frames, masks = _scene()
  masks = masks.copy()
  masks[1][masks[1] == 3] = 0
  masks[1, 0, 23] = 3  # identity 3 is a 1-pixel region in frame 1
  classifier = IdentityClassifier.fit(frames, masks, 4)  # identity 4 never appears
  assert np.isnan(classifier.centroids_nd[3]).all()
  predicted = classifier.predict(frames, masks)
  assert predicted[1, 2] == -1 and (predicted[:, 3] == -1).all()
  assert not (predicted == 4).any()
  assert identity_consistency(classifier, frames, masks) == {"accuracy": 1.0, "num_regions": 11}
  # With min_pixels = 1 the speck counts (as a background-coloured region it may be misread).
  loose = IdentityClassifier.fit(frames, masks, 4, min_pixels=1)
  assert loose.predict(frames, masks)[1, 2] != -1
  assert identity_consistency(classifier, frames, masks, np.zeros(4, bool))["num_regions"] == 0


def test_bad_input_raises():
  frames, masks = _scene()
  with pytest.raises(ValueError, match="labels in \\[0, N = 2\\]"):
    IdentityClassifier.fit(frames, masks, 2)
  with pytest.raises(ValueError, match="frames in \\[0, 1\\]"):
    IdentityClassifier.fit(2 * frames - 1, masks, 3)
  with pytest.raises(ValueError, match="masks as \\[F, H, W\\]"):
    IdentityClassifier.fit(frames, masks[:2], 3)
  with pytest.raises(ValueError, match="no region"):
    IdentityClassifier.fit(frames, np.zeros_like(masks), 3)
  with pytest.raises(ValueError, match="bins >= 1"):
    IdentityClassifier.fit(frames, masks, 3, bins=0)
  with pytest.raises(ValueError, match="NaN"):
    IdentityClassifier.fit(np.where(frames > 0.8, np.nan, frames), masks, 3)
  classifier = IdentityClassifier.fit(frames, masks, 3)
  with pytest.raises(ValueError, match="frame_mask as bool \\[F\\]"):
    identity_consistency(classifier, frames, masks, np.ones(3, bool))

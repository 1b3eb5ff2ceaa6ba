"""GenDoP training records: caption ids, [BOS] + 300 tokens, the targets shifted by one and ending in EOS."""

import numpy as np
import pytest

from jaxlab.camera import tokenizer as pose_tokenizer
from jaxlab.camera.records import ShotSource, caption_of
from jaxlab.camera.synthetic import make_shots
from jaxlab.camera.text import train_caption_tokenizer


@pytest.fixture(scope="module")
def shots():
  return make_shots(3, 5, split="train", render=False)


def test_records_follow_the_token_layout(shots):
  tok = train_caption_tokenizer([caption_of(s, k) for s in shots for k in ("motion", "directorial")], vocab_size=300)
  source = ShotSource(shots, tok, caption="motion")
  record = source[1]
  assert record["text_ids"].shape == (77,) and record["text_ids"][0] != 0
  assert record["input_ids"][0] == pose_tokenizer.BOS and record["targets"][-1] == pose_tokenizer.EOS
  np.testing.assert_array_equal(record["input_ids"][1:], record["targets"][:-1])
  expected = pose_tokenizer.encode(shots[1].c2w_n44, shots[1].fl_x, shots[1].fl_y, shots[1].width, shots[1].height)
  np.testing.assert_array_equal(record["targets"][:-1], expected)
  # The ablation's tokens differ (no relative poses, no scale normalization).
  ablation = ShotSource(shots, tok, caption="motion", normalize=False)
  assert not np.array_equal(ablation[1]["targets"], record["targets"])


def test_rgbd_records_need_rendered_frames(shots):
  tok = train_caption_tokenizer([caption_of(s, k) for s in shots for k in ("motion", "directorial")], vocab_size=2000)
  with pytest.raises(ValueError, match="RGB and depth"):
    ShotSource(shots, tok, caption="directorial", with_rgbd=True)
  with pytest.raises(ValueError, match="caption kind"):
    ShotSource(shots, tok, caption="poetic")

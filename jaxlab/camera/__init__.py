"""GenDoP: autoregressive camera-trajectory generation from captions (and the first frame's RGB-D).

- `trajectory`: pose checks (re-orthonormalization of slightly off rotations), quaternions, slerp,
  resampling and cleaning to 120 frames.
- `datadop`: the DataDoP per-shot layout (captions, NeRF-style transforms in OpenGL axes, first-frame
  RGB and depth), read and written; poses in OpenCV axes inside jaxlab.
- `tokenizer`: the 300-token pose layout (30 poses x 10 values, 256 bins, offset 3, vocabulary 260).
- `motion_classes`, `motion_tags`: 27 translation x 7 rotation classes, the motion segmentation and
  the weighted F1.
- `synthetic`: the embedded shots (composed moves, motion and directorial captions, first frame
  rendered by `jaxlab.splat`), split by template and scene.
- `text`, `model`: the caption BPE and text encoder trained here; the OPT-style decoder with prefix
  conditioning, cached decoding with the EOS rule.
- `records`, `clatr`: training records; the contrastive text-trajectory embedding and its metrics.
"""

from jaxlab.camera.datadop import Shot, read_datadop, read_shot, write_shot
from jaxlab.camera.model import GenDoP, GenDoPConfig, generate
from jaxlab.camera.motion_tags import segment, trajectory_f1, weighted_f1
from jaxlab.camera.synthetic import make_shot, make_shots
from jaxlab.camera.tokenizer import decode, encode
from jaxlab.camera.trajectory import TrajectoryError, check_trajectory, resample

__all__ = [
    "GenDoP",
    "GenDoPConfig",
    "Shot",
    "TrajectoryError",
    "check_trajectory",
    "decode",
    "encode",
    "generate",
    "make_shot",
    "make_shots",
    "read_datadop",
    "read_shot",
    "resample",
    "segment",
    "trajectory_f1",
    "weighted_f1",
    "write_shot",
]

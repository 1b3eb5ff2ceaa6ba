"""Structural Video Diffusion: multi-identity image animation with identity embeddings and joint RGB, depth
and normal denoising, on the rectified-flow stack of `jaxlab.flow`.

- `clip`: the clip data model (RGB, depth, normals, identity masks, OpenPose-18 poses, cameras), checked.
- `figures`, `raycast`, `synthetic`: the embedded generator: articulated figures with distinct clothes that
  walk, turn, cross and occlude each other under a moving camera, ray cast.
- `disk`: the on-disk clip layout for real videos (PNG frames and masks, depth, normals, poses and cameras
  as JSON), read and written.
- `pose_maps`, `plucker`, `modalities`, `source`: the conditions (skeleton maps, Plücker ray maps), the
  channel layout of the denoised video, and the grain training records.
- `identity`, `blocks`, `model`: identity embeddings through a zero-initialized convolution, the
  spatio-temporal blocks with reference attention, and the denoiser with per-modality branches.
- `objective`, `sampling`: the structural flow loss (one noise level, independent noise per modality,
  summed per-modality errors) and the sampler.
- `metrics`, `identity_classifier`: PSNR, SSIM, depth and normal errors, and identity consistency.

Importing this package defines functions and classes only; nothing is computed or compiled.
"""

from jaxlab.video.clip import KEYPOINT_NAMES, LIMBS, ClipError, VideoClip
from jaxlab.video.disk import list_clips, read_clip, write_clip
from jaxlab.video.identity import IdentityEmbedding, paint_identity_map
from jaxlab.video.identity_classifier import IdentityClassifier, identity_consistency
from jaxlab.video.metrics import depth_errors, frames_after_crossing, normal_angle_error, video_psnr, video_ssim
from jaxlab.video.modalities import (
    MODALITIES,
    MODALITY_CHANNELS,
    channels_of,
    check_modalities,
    decode_depth,
    decode_normal,
    decode_rgb,
    encode_modalities,
    split_modalities,
)
from jaxlab.video.model import VideoCondition, VideoDenoiser, VideoDenoiserConfig
from jaxlab.video.objective import structural_flow_loss
from jaxlab.video.plucker import plucker_rays
from jaxlab.video.pose_maps import draw_pose_maps
from jaxlab.video.sampling import sample_video
from jaxlab.video.source import VideoClipSource
from jaxlab.video.synthetic import generate_clip

__all__ = [
    "KEYPOINT_NAMES",
    "LIMBS",
    "MODALITIES",
    "MODALITY_CHANNELS",
    "ClipError",
    "IdentityClassifier",
    "IdentityEmbedding",
    "VideoClip",
    "VideoClipSource",
    "VideoCondition",
    "VideoDenoiser",
    "VideoDenoiserConfig",
    "channels_of",
    "check_modalities",
    "decode_depth",
    "decode_normal",
    "decode_rgb",
    "depth_errors",
    "draw_pose_maps",
    "encode_modalities",
    "frames_after_crossing",
    "generate_clip",
    "identity_consistency",
    "list_clips",
    "normal_angle_error",
    "paint_identity_map",
    "plucker_rays",
    "read_clip",
    "sample_video",
    "split_modalities",
    "structural_flow_loss",
    "video_psnr",
    "video_ssim",
    "write_clip",
]

"""Vision-language models (InternVL3 style): image tiling, image-token layout, chat prompts, the InternViT
vision tower, pixel shuffle and the MLP projector, the full `InternVLModel`, its generation and Hugging Face
checkpoint I/O. V2PE positions for its image tokens are `jaxlab.nn.v2pe`."""

from jaxlab.vlm.chat_template import INTERNVL_SYSTEM_MESSAGE
from jaxlab.vlm.chat_template import render_chat
from jaxlab.vlm.config import InternVLConfig
from jaxlab.vlm.generate import generate
from jaxlab.vlm.hf_io import load_pretrained
from jaxlab.vlm.hf_io import save_pretrained
from jaxlab.vlm.image_tokens import IMAGE_PLACEHOLDER
from jaxlab.vlm.image_tokens import IMG_CONTEXT
from jaxlab.vlm.image_tokens import IMG_END
from jaxlab.vlm.image_tokens import IMG_START
from jaxlab.vlm.image_tokens import VIDEO_PLACEHOLDER
from jaxlab.vlm.image_tokens import expand_image_tokens
from jaxlab.vlm.image_tokens import image_token_block
from jaxlab.vlm.image_tokens import video_token_block
from jaxlab.vlm.image_tokens import visual_token_layout
from jaxlab.vlm.model import InternVLModel
from jaxlab.vlm.model import init_params
from jaxlab.vlm.projector import MultiModalProjector
from jaxlab.vlm.projector import ProjectorConfig
from jaxlab.vlm.projector import image_features
from jaxlab.vlm.projector import pixel_shuffle
from jaxlab.vlm.projector import pixel_unshuffle
from jaxlab.vlm.tiling import IMAGENET_MEAN
from jaxlab.vlm.tiling import IMAGENET_STD
from jaxlab.vlm.tiling import as_rgb_array
from jaxlab.vlm.tiling import choose_tile_grid
from jaxlab.vlm.tiling import dynamic_preprocess
from jaxlab.vlm.tiling import preprocess_images
from jaxlab.vlm.tiling import preprocess_video_frames
from jaxlab.vlm.tiling import tile_grid_candidates
from jaxlab.vlm.vision import InternVisionConfig
from jaxlab.vlm.vision import InternVisionModel

__all__ = [
    "InternVLConfig",
    "InternVLModel",
    "generate",
    "init_params",
    "load_pretrained",
    "save_pretrained",
    "InternVisionConfig",
    "InternVisionModel",
    "MultiModalProjector",
    "ProjectorConfig",
    "image_features",
    "pixel_shuffle",
    "pixel_unshuffle",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_PLACEHOLDER",
    "IMG_CONTEXT",
    "IMG_END",
    "IMG_START",
    "INTERNVL_SYSTEM_MESSAGE",
    "VIDEO_PLACEHOLDER",
    "as_rgb_array",
    "choose_tile_grid",
    "dynamic_preprocess",
    "expand_image_tokens",
    "image_token_block",
    "preprocess_images",
    "preprocess_video_frames",
    "render_chat",
    "tile_grid_candidates",
    "video_token_block",
    "visual_token_layout",
]

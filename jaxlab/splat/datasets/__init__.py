"""Scene datasets for fitting: Blender / NeRF-synthetic, nerfstudio and COLMAP, as `SceneData`.

`load_dataset(path, format="auto", split=..., downscale=..., background=..., test_every=...)`
returns batched OpenCV cameras, [V, H, W, 3] float32 images in [0, 1] (RGBA composited on
`background`), optional masks and depths, and the initial point cloud where the format has
one. `load_cameras` gives the same views' cameras and names without reading the images.
Each format also has its own loader (`load_blender`, `load_nerfstudio`,
`load_colmap`), and the COLMAP model readers are public for other tools.
"""

from jaxlab.splat.datasets.blender import load_blender
from jaxlab.splat.datasets.colmap import (
    ColmapCamera,
    ColmapImage,
    ColmapPoints,
    load_colmap,
    read_model,
)
from jaxlab.splat.datasets.common import SPLITS, SceneData, split_indices
from jaxlab.splat.datasets.load import FORMATS, detect_format, load_cameras, load_dataset
from jaxlab.splat.datasets.nerfstudio import load_nerfstudio

__all__ = [
    "FORMATS",
    "SPLITS",
    "ColmapCamera",
    "ColmapImage",
    "ColmapPoints",
    "SceneData",
    "detect_format",
    "load_blender",
    "load_cameras",
    "load_colmap",
    "load_dataset",
    "load_nerfstudio",
    "read_model",
    "split_indices",
]

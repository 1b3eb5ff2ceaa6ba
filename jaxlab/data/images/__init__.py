"""Images offline: random crops of the colour photographs bundled with scikit-image."""

from jaxlab.data.images.photos import PHOTO_NAMES
from jaxlab.data.images.photos import PhotoCropSource
from jaxlab.data.images.photos import area_resize
from jaxlab.data.images.photos import load_photos

__all__ = ["PHOTO_NAMES", "PhotoCropSource", "area_resize", "load_photos"]

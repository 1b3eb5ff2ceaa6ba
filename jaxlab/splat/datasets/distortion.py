"""Refusing lens distortion: the loaders read distortion coefficients but do not undistort.

The renderer is a pinhole camera. Images taken through a distorting lens must be
undistorted before fitting, or every pixel away from the centre lands in the wrong place;
the loaders therefore accept a distortion model only when all of its coefficients are 0,
and otherwise say how to undistort.
"""

COLMAP_UNDISTORT_REMEDY = (
    "undistort the model first with COLMAP: `colmap image_undistorter --image_path IMAGES --input_path SPARSE"
    " --output_path OUT --output_type COLMAP`, then load OUT (its cameras are PINHOLE and its images undistorted)")


def refuse_distortion(coefficients: dict[str, float], *, model: str, where: str, remedy: str) -> None:
  """Raises ValueError naming `where`, the model and each non-zero coefficient, if there is one."""
  nonzero = {name: value for name, value in coefficients.items() if value != 0.0}
  if nonzero:
    listed = ", ".join(f"{name}={value:g}" for name, value in nonzero.items())
    raise ValueError(
        f"{where}: camera model {model} has non-zero distortion ({listed}); undistorting images is not"
        f" supported: {remedy}")

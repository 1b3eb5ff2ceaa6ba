"""Gaussian rasterization op: public function in `api`, plain-JAX reference in `reference`.

The function itself is exported as `jaxlab.ops.gaussian_raster`; kernel launch settings live
with the kernel in `kernels_pallas/gaussian_raster/`.
"""

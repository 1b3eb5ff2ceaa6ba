"""Gaussian rasterization op: public function in `api`, plain-JAX reference in `reference`,
kernel launch settings in `config`.

The function itself is exported as `jaxlab.ops.gaussian_raster`.
"""

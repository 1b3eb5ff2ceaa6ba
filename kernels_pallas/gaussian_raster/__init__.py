"""Gaussian splatting rasterization kernels (see README.md); called through `jaxlab.ops.gaussian_raster`."""

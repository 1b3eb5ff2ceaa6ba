"""Flash-attention kernels (see README.md); called only through `jaxlab.ops.attention`."""

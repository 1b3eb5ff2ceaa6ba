"""RMSNorm kernels (see README.md); called only through `jaxlab.ops.rms_norm`."""

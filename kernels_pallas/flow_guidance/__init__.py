"""HiFlow guidance kernels (see README.md); called only through `jaxlab.ops.flow_guidance`."""

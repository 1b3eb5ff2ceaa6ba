"""RMSNorm op: public function in `api`, jnp reference in `reference`.

The function itself is exported as `jaxlab.ops.rms_norm`; kernel settings
(`RmsNormBlockConfig`) live with the kernel in `kernels_pallas/rms_norm/`.
"""

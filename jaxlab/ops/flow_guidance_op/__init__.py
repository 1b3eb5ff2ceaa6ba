"""HiFlow guidance op: public function in `api`, jnp reference in `reference`, low-pass filters in `spectral`.

The function itself is exported as `jaxlab.ops.flow_guidance`; kernel settings
(`FlowGuidanceConfig`) live with the kernel in `kernels_pallas/flow_guidance/`.
"""

"""HiFlow guidance op: public function in `api`, jnp reference in `reference`, kernel settings in `config`.

The function itself is exported as `jaxlab.ops.flow_guidance`.
"""

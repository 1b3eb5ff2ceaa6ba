"""Attention op: public function in `api`, mask description in `mask`, jnp reference in
`reference`, flash-kernel tiles in `config`. The function itself is exported as
`jaxlab.ops.attention`."""

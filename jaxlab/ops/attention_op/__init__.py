"""Attention op: public function in `api`, mask description in `mask`, jnp reference in
`reference`, the context-parallel form in `context_parallel`. The function itself is exported as
`jaxlab.ops.attention`; the flash kernel's tiles (`FlashBlockConfig`) live with the kernel."""

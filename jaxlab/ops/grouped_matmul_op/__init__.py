"""Grouped (ragged) matmul op: public function in `api`, XLA reference in `reference`.

The function itself is exported as `jaxlab.ops.grouped_matmul`; tile shapes per quantization
scheme (`GroupedMatmulConfig`) and the tile schedule live with the kernel in
`kernels_pallas/grouped_matmul/`.
"""

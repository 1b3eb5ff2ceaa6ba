"""Grouped (ragged) matmul op: public function in `api`, XLA reference in `reference`,
tile shapes per quantization scheme in `config`, tile schedule in `schedule`.

The function itself is exported as `jaxlab.ops.grouped_matmul`.
"""

r"""MxMoE mixed-precision quantization of a trained MoE LM, with uniform RTN and GPTQ baselines.

  python -m launch.run --config=configs/mxmoe_quantize.py --config.model=runs/moe_lm/model --workdir=runs/mxmoe

`model` is a Hugging Face-format folder holding tokenizer.json (what configs/moe_lm.py writes).
For each budget: uniform RTN and uniform GPTQ in `uniform_scheme`, and MxMoE's allocation over
`menu` at the same average bits (gate and up share a scheme; objective L^r T^(1-r), solved
exactly), quantized with GPTQ. Weight-only budgets use r = 1 (accuracy only, as the paper does
for 2.25 and 3.25 bits); the W5A5 row uses the {w4a4, w8a8} menu and r = 0.75. The residual
stream is first rotated by a random Hadamard matrix (outputs unchanged in float), as for the
paper's GPTQ* baseline and MxMoE. Speedups come from the cost model for `cost.device_kind`:
a measured table when `cost.table_dir` holds one for that device, else a labelled roofline
estimate.

Variants: default; smoke (one budget, little evaluation text: the pipeline in a few minutes).
"""

import ml_collections

from configs.common import pick_variant

VARIANTS = ("default", "smoke")

# 1.25 to 8.25 bits, so that even the 2.25-bit budget leaves the allocation a choice.
_WEIGHT_ONLY_MENU = ("w1a16_g128_asym", "w2a16_g128_asym", "w3a16_g128_asym", "w4a16_g128_asym", "w8a16_g128_asym")


def _budget(avg_bits, uniform_scheme, menu, r, batch_tokens):
  return ml_collections.ConfigDict(dict(avg_bits=avg_bits, uniform_scheme=uniform_scheme, menu=menu, r=r,
                                        batch_tokens=batch_tokens))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = pick_variant(arg, VARIANTS)
  c = ml_collections.ConfigDict()
  c.task = "mxmoe_quantize"
  c.seed = 0
  c.cpu_devices = 1
  c.model = ""  # required: --config.model=DIR
  c.moe_implementation = "xla"  # the kernel's reference; "" lets the op pick (pallas_triton on GPU)
  c.rotate = True
  c.data = ml_collections.ConfigDict(dict(
      validation_plays=("hamlet", "tempest"), calibration_sequences=64, calibration_seq_len=128,
  ))
  c.cost = ml_collections.ConfigDict(dict(device_kind="NVIDIA H200", table_dir="", batch_tokens=(512, 8192)))
  c.evaluation = ml_collections.ConfigDict(dict(
      context=128, stride=64, batch_size=16, max_tokens=0, num_prompts=8, prompt_len=32, prompt_stride=4096,
      new_tokens=32, agreement_k=8,
  ))
  c.budgets = (
      _budget(2.25, "w2a16_g128_asym", _WEIGHT_ONLY_MENU, 1.0, 512),
      _budget(3.25, "w3a16_g128_asym", _WEIGHT_ONLY_MENU, 1.0, 512),
      _budget(4.25, "w4a16_g128_asym", _WEIGHT_ONLY_MENU, 1.0, 512),
      _budget(5.0, "w4a4_g-1_sym", ("w4a4_g-1_sym", "w8a8_g-1_sym"), 0.75, 8192),
  )
  if variant == "smoke":
    c.data.update(calibration_sequences=8, calibration_seq_len=32)
    c.evaluation.update(context=32, stride=32, batch_size=8, max_tokens=2048, num_prompts=2, prompt_len=8,
                        prompt_stride=512, new_tokens=8, agreement_k=4)
    c.budgets = (_budget(3.25, "w3a16_g128_asym", _WEIGHT_ONLY_MENU, 1.0, 512),)
  return c

"""Training tasks that `launch.run` can start, by the name in `config.task`.

A task module defines `run(config, workdir, *, stop_requested) -> jaxlab.train.LoopResult`;
it is the only code that reads a ConfigDict and turns it into library arguments.
"""

import importlib

TASKS = {
    "arft": "launch.tasks.arft",
    "flow_train": "launch.tasks.flow_train",
    "gendop_train": "launch.tasks.gendop_train",
    "lm_tiny": "launch.tasks.lm_tiny",
    "mmif_dpo": "launch.tasks.mmif_dpo",
    "mmif_sft": "launch.tasks.mmif_sft",
    "moe_lm": "launch.tasks.moe_lm",
    "multispa_sft": "launch.tasks.multispa_sft",
    "mxmoe_quantize": "launch.tasks.mxmoe_quantize",
    "robosplat_generate": "launch.tasks.robosplat_generate",
    "robosplat_policy": "launch.tasks.robosplat_policy",
    "splat_fit": "launch.tasks.splat_fit",
    "v3dg_build": "launch.tasks.v3dg_build",
    "video_train": "launch.tasks.video_train",
    "vlm_mpo": "launch.tasks.vlm_mpo",
    "vlm_prm": "launch.tasks.vlm_prm",
    "vlm_sft": "launch.tasks.vlm_sft",
}


def get_task(name: str):
  if name not in TASKS:
    raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
  return importlib.import_module(TASKS[name])

"""Every config's default and smoke variants run on hosts with 1, 2, 4 and 8 devices.

`--config.cpu_devices=N` gives the run N fake CPU devices, as a host with N GPUs would have.
The default tier runs the main job's smoke variant on 8 devices (the case that once died in
an IndivisibleError); the slow tier runs every smoke and default variant on each count, for a
few steps each (MxMoE with a shortened evaluation, the V3DG build with two local-splatting
iterations).
"""

import pytest

from tests.e2e.conftest import result, run, run_env

pytestmark = pytest.mark.e2e

FEW_STEPS = {"train.num_steps": 2, "train.log_every": 1, "train.eval_every": 0, "checkpoint.save_every": 2}
TRAINING = {
    "lm_tiny": ("configs/lm_tiny.py", {}),
    "splat_fit": ("configs/splat_fit.py", {"outputs.turntable_frames": 2, "outputs.num_test_renders": 1}),
    "flow_train": ("configs/flow_train.py", {"sampling.num_steps": 2, "sampling.per_class": 1}),
    "vlm_sft": ("configs/vlm_sft.py", {"data.num_eval": 8}),
    # FEW_STEPS shortens the PRM's loop; the SFT stage, the PRM data and the evaluation are shortened here.
    "vlm_prm": ("configs/vlm_prm.py", {"sft.train.num_steps": 2, "sft.train.log_every": 1, "sft.data.num_eval": 8,
                                       "prm.num_images": 8, "prm.global_batch_size": 8, "prm.num_eval_records": 8,
                                       "bon.num_eval": 4}),
    "vlm_mpo": ("configs/vlm_mpo.py", {"sft.train.num_steps": 2, "sft.train.log_every": 1, "sft.data.num_eval": 8,
                                       "sft.checkpoint.save_every": 2, "pairs.num_prompts": 16,
                                       "pairs.reference_as_chosen": True, "evaluation.num_eval": 8}),
    "moe_lm": ("configs/moe_lm.py", {"evaluation.max_tokens": 256}),
    "mmif_sft": ("configs/mmif_sft.py", {"data.num_train": 32, "data.num_eval": 8, "evaluation.batch_size": 8,
                                         "evaluation.max_new_tokens": 16}),
    "mmif_dpo": ("configs/mmif_dpo.py", {"sft.train.num_steps": 2, "sft.train.log_every": 1, "sft.data.num_train": 32,
                                         "sft.data.num_eval": 8, "sft.evaluation.batch_size": 8,
                                         "sft.evaluation.max_new_tokens": 16, "sft.checkpoint.save_every": 2,
                                         "pairs.num_prompts": 16}),
    "multispa_sft": ("configs/multispa_sft.py", {"data.train_rooms": 1, "data.train_tracks": 1, "data.eval_rooms": 1,
                                                 "data.eval_tracks": 1, "data.items_per_scene": 8,
                                                 "data.num_workers": 0, "evaluation.batch_size": 8,
                                                 "evaluation.max_new_tokens": 8}),
    "gendop_train": ("configs/gendop_train.py", {"data.num_train": 16, "data.num_test": 8, "evaluation.batch_size": 8,
                                                 "clatr.steps": 2, "clatr.batch_size": 8}),
    "video_train": ("configs/video_train.py", {"data.num_train": 8, "data.num_test": 8, "evaluation.num_steps": 2,
                                               "evaluation.gif_clips": 1}),
    # Both stages and the live evaluation, shortened.
    "arft_coding": ("configs/arft_coding.py", {"sft.num_steps": 2, "grpo.num_steps": 2, "data.num_train": 8,
                                               "data.num_eval": 4, "evaluation.max_rounds": 1}),
    "arft_search": ("configs/arft_search.py", {"sft.num_steps": 2, "grpo.num_steps": 2, "data.num_train": 8,
                                               "data.num_eval": 4, "evaluation.max_rounds": 1}),
}


def test_main_job_smoke_on_8_devices_spreads_views(tmp_path, env):
  workdir = tmp_path / "splat8"
  out = run(workdir, {**FEW_STEPS, **TRAINING["splat_fit"][1], "cpu_devices": 8}, env=env, config="configs/splat_fit.py:smoke")
  assert "on 8 devices" in out
  summary = result(workdir)
  assert summary["status"] == "completed" and summary["final_step"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("devices", [1, 2, 4, 8])
@pytest.mark.parametrize("name", sorted(TRAINING))
def test_smoke_variant_runs(tmp_path, env, name, devices):
  path, overrides = TRAINING[name]
  workdir = tmp_path / "run"
  out = run(workdir, {**FEW_STEPS, **overrides, "cpu_devices": devices}, env=env, config=f"{path}:smoke", timeout=900)
  assert f"on {devices} devices" in out
  assert result(workdir)["final_step"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("devices", [1, 2, 4, 8])
@pytest.mark.parametrize("name", sorted(TRAINING))
def test_default_variant_runs(tmp_path, env, name, devices):
  path, overrides = TRAINING[name]
  workdir = tmp_path / "run"
  out = run(workdir, {**FEW_STEPS, **overrides, "cpu_devices": devices}, env=env, config=path, timeout=1800)
  assert f"on {devices} devices" in out
  assert result(workdir)["final_step"] == 2


@pytest.fixture(scope="module")
def moe_model(tmp_path_factory):
  """A two-step smoke MoE model for the quantization runs to read."""
  model_run = tmp_path_factory.mktemp("moe") / "run"
  run(model_run, {**FEW_STEPS, **TRAINING["moe_lm"][1]}, env=run_env(tmp_path_factory.mktemp("jax_cache")),
      config="configs/moe_lm.py:smoke", timeout=900)
  return model_run / "model"


# The default variant evaluates two whole plays at context 128; a slice of them takes the same paths.
MXMOE_SHORT = {
    "": {"evaluation.max_tokens": 1024, "evaluation.num_prompts": 2, "evaluation.prompt_stride": 256,
         "evaluation.new_tokens": 4, "evaluation.agreement_k": 4, "data.calibration_sequences": 8},
    ":smoke": {},
}


@pytest.mark.slow
@pytest.mark.parametrize("devices", [1, 2, 4, 8])
@pytest.mark.parametrize("variant", sorted(MXMOE_SHORT))
def test_mxmoe_quantize_runs(tmp_path, env, moe_model, variant, devices):
  workdir = tmp_path / "mxmoe"
  out = run(workdir, {"model": str(moe_model), "cpu_devices": devices, **MXMOE_SHORT[variant]}, env=env,
            config=f"configs/mxmoe_quantize.py{variant}", timeout=1800)
  assert f"on {devices} devices" in out
  assert (workdir / "results.json").is_file()


# The default build runs V3DG's 640 local-splatting iterations per group; two take the same paths.
V3DG_SHORT = {"": {"local_splat.iterations": 2}, ":smoke": {}}


@pytest.mark.slow
@pytest.mark.parametrize("devices", [1, 2, 4, 8])
@pytest.mark.parametrize("variant", sorted(V3DG_SHORT))
def test_v3dg_build_runs(tmp_path, env, variant, devices):
  workdir = tmp_path / "v3dg"
  out = run(workdir, {"cpu_devices": devices, **V3DG_SHORT[variant]}, env=env, config=f"configs/v3dg_build.py{variant}",
            timeout=1800)
  assert f"on {devices} devices" in out
  assert (workdir / "bundle.npz").is_file()

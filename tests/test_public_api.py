"""The public surface: every package reachable from `jaxlab`, and the names users need from each."""

import importlib
import pathlib

import pytest

import jaxlab

PACKAGE_DIR = pathlib.Path(jaxlab.__file__).parent


def test_every_package_is_a_lazy_name_of_jaxlab():
  packages = sorted(p.parent.name for p in PACKAGE_DIR.glob("*/__init__.py"))
  modules = sorted(p.stem for p in PACKAGE_DIR.glob("*.py") if not p.stem.startswith("_"))
  missing = [name for name in packages + modules if name not in dir(jaxlab)]
  assert not missing, f"not reachable as jaxlab.<name>: {missing}"
  for name in packages + modules:
    assert getattr(jaxlab, name) is importlib.import_module(f"jaxlab.{name}")


@pytest.mark.parametrize("package,names", [
    ("jaxlab.models", ("DecoderLM", "Qwen2LM", "Qwen2Config")),
    ("jaxlab.flow", ("DiT", "DiTConfig", "hiflow_sample", "HiFlowSettings", "euler_sample")),
    ("jaxlab.vlm", ("InternVLModel", "InternVLConfig", "load_pretrained")),
    ("jaxlab.moe.models", ("MoEDecoderLM", "MoELMConfig", "load_pretrained")),
    ("jaxlab.nn", ("dot_product_attention", "RMSNorm")),
    ("jaxlab.agent", ("run_agent", "VlmStepPolicy", "AgentTools", "Trajectory", "AgentVocab", "step_reward")),
    ("jaxlab.mmif", ("verify", "score_items", "OpenAIChatJudge", "VlmJudge", "integrate_constraints", "make_pairs",
                     "read_mmifeval", "SUB_TYPES")),
    ("jaxlab.ops", ("attention", "rms_norm", "grouped_matmul", "flow_guidance", "gaussian_raster")),
    ("jaxlab.video", ("VideoDenoiser", "VideoDenoiserConfig", "structural_flow_loss", "generate_clip", "read_clip",
                      "sample_video")),
    ("jaxlab.view", ("open_source", "Viewer", "ViewRequest", "GaussianFrames", "SourceError")),
])
def test_packages_export_what_users_need(package, names):
  module = importlib.import_module(package)
  missing = [n for n in names if n not in getattr(module, "__all__", ())]
  assert not missing, f"{package} does not export {missing}"


def test_unknown_top_level_name_is_an_attribute_error():
  with pytest.raises(AttributeError, match="no attribute 'nope'"):
    jaxlab.nope  # noqa: B018

"""The README's commands and example stay true."""

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np

README = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()


def _code_after(heading: str) -> str:
  section = README.split(heading, 1)[1]
  return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_compose_example_runs_and_its_step_trains():
  namespace: dict = {}
  exec(compile(_code_after("## Compose in research code"), "README.md", "exec"), namespace)
  assert namespace["y"].shape == (4, 100)
  state, step = namespace["state"], namespace["step"]
  ids = jnp.asarray(np.random.default_rng(0).integers(0, 32, size=(8, 16)), jnp.int32)
  batch = {"inputs": ids, "targets": ids, "loss_mask": jnp.ones((8, 16))}
  with jax.set_mesh(namespace["mesh"]), namespace["axis_rules"](namespace["rules"]):
    state, first = step(state, batch, jax.random.key(0))
    for _ in range(5):
      state, last = step(state, batch, jax.random.key(0))
  assert int(state.step) == 6 and float(last["loss"]) < float(first["loss"])


def test_ci_runs_the_readme_test_command():
  ci = (pathlib.Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
  assert "<!-- test-command -->" in ci
  command = re.search(r"<!-- test-command -->\n```bash\n(.*)\n```", README).group(1)
  # CI installs the parity and robot extras and forbids the transformers parity tests to skip.
  assert "pip install -e '.[test,parity,robot]'" in command and "JAXLAB_REQUIRE_PARITY=1" in command
  assert "pytest" in command and "-m 'not slow'" in command
  main = re.search(r"<!-- main-command -->\n```bash\n(.*)\n```", README).group(1)
  assert "launch.run --config=configs/splat_fit.py" in main


def test_splatting_example_renders_and_writes_a_ply(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  namespace: dict = {}
  exec(compile(_code_after("Gaussian splatting composes these"), "README.md", "exec"), namespace)
  out = namespace["out"]
  assert out.rgb.shape == (240, 320, 3) and float(out.alpha.max()) > 0.5
  assert not bool(out.overflow)
  assert (tmp_path / "scene.ply").stat().st_size > 10_000 * 59 * 4  # 59 float properties per Gaussian


def test_moe_example_runs_and_quantized_experts_stay_close():
  namespace: dict = {}
  exec(compile(_code_after("Mixture-of-experts layers run their experts"), "README.md", "exec"), namespace)
  assert namespace["y"].shape == (2, 16, 128)
  assert int(namespace["aux"].tokens_per_expert.sum()) == 2 * 16 * 2
  y_q = np.asarray(namespace["y_q"])
  p = namespace["params"]
  from jaxlab.moe import moe_ffn

  y_float, _ = moe_ffn(namespace["x"].reshape(-1, 128), p["router"], p["gate_up"], p["down"], top_k=2)
  y_float = np.asarray(y_float)
  assert y_q.shape == y_float.shape
  assert np.linalg.norm(y_q - y_float) < 0.2 * np.linalg.norm(y_float)


def test_hiflow_example_samples_three_resolutions():
  namespace: dict = {}
  exec(compile(_code_after("HiFlow wraps any velocity function"), "README.md", "exec"), namespace)
  assert namespace["images"].shape == (4, 32, 32, 3)
  shapes = [s.shape for s in namespace["result"].samples]
  assert shapes == [(4, 32, 32, 3), (4, 64, 64, 3), (4, 128, 128, 3)]
  assert all(bool(jnp.all(jnp.isfinite(s))) for s in namespace["result"].samples)

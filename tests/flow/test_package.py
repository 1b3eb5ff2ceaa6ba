"""`jaxlab.flow` exports its modules' public names and computes nothing when imported."""

import os
import pathlib
import subprocess
import sys

import jaxlab.flow
from jaxlab.flow import dit, dit_io, hiflow, image_stats
from jaxlab.ops.flow_guidance_op import spectral

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_every_exported_name_resolves():
  missing = [name for name in jaxlab.flow.__all__ if not hasattr(jaxlab.flow, name)]
  assert not missing, missing


def test_exports_are_the_modules_own_objects():
  assert jaxlab.flow.DiT is dit.DiT and jaxlab.flow.DiTConfig is dit.DiTConfig
  assert jaxlab.flow.save_dit is dit_io.save_dit and jaxlab.flow.load_dit is dit_io.load_dit
  assert jaxlab.flow.hiflow_sample is hiflow.hiflow_sample and jaxlab.flow.HiFlowSettings is hiflow.HiFlowSettings
  assert jaxlab.flow.lowpass is spectral.lowpass and jaxlab.flow.butterworth_mask is spectral.butterworth_mask
  assert jaxlab.flow.lowfreq_error is image_stats.lowfreq_error


def test_import_creates_no_arrays_and_compiles_nothing():
  code = ("import jax, jaxlab.flow; "
          "assert not jax.live_arrays(), jax.live_arrays(); print('ok')")
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False,
                          env={**os.environ, "JAX_PLATFORMS": "cpu", "JAX_LOG_COMPILES": "1"})
  assert result.returncode == 0, result.stderr
  assert "Compiling" not in result.stderr and "Finished tracing" not in result.stderr, result.stderr

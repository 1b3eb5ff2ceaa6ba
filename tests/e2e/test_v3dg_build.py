"""`configs/v3dg_build.py` end to end: the embedded asset and a user's INRIA PLY become loadable bundles."""

import json
import subprocess

import imageio.v3 as iio
import numpy as np
import pytest

from jaxlab.splat import save_ply
from jaxlab.splat.lod import load_bundle
from jaxlab.splat.lod.assets import donut_gaussians
from jaxlab.testing.tensorboard import read_images
from tests.e2e.conftest import REPO, launch_args, result, run

pytestmark = pytest.mark.e2e
SMOKE = "configs/v3dg_build.py:smoke"


def test_smoke_build_writes_a_bundle_report_and_preview_on_2_devices(tmp_path, env):
  workdir = tmp_path / "run"
  out = run(workdir, {"cpu_devices": 2}, env=env, config=SMOKE, timeout=600)
  assert "on 2 devices" in out
  bundle = load_bundle(workdir / "bundle.npz")
  report = json.loads((workdir / "report.json").read_text())
  assert report["gaussians_per_level"] == bundle.gaussians_per_level() and bundle.num_levels >= 3
  assert report["source"] == "embedded:scene" and report["overflow_renders"] == 0
  assert (workdir / "levels.png").stat().st_size > 1000
  ((step, logged),) = read_images(workdir / "tb")["levels"]
  assert step == 0 and (logged == iio.imread(workdir / "levels.png")).all()
  assert result(workdir)["levels"] == bundle.num_levels


def test_a_users_ply_of_sh_degree_3_builds_at_degree_0(tmp_path, env):
  gaussians = donut_gaussians(1200, seed=4)
  rest = np.random.default_rng(0).normal(0, 0.1, (1200, 15, 3)).astype(np.float32)
  gaussians = gaussians.replace(sh=np.concatenate([np.asarray(gaussians.sh), rest], axis=1))
  save_ply(tmp_path / "asset.ply", gaussians)
  workdir = tmp_path / "run"
  run(workdir, {"input.ply": tmp_path / "asset.ply", "local_splat.iterations": 0}, env=env, config=SMOKE, timeout=600)
  bundle = load_bundle(workdir / "bundle.npz")
  level0 = bundle.level_gaussians(0)
  order = np.lexsort(np.asarray(level0.means).T)
  source_order = np.lexsort(np.asarray(gaussians.means).T)
  np.testing.assert_array_equal(np.asarray(level0.means)[order], np.asarray(gaussians.means)[source_order])
  np.testing.assert_array_equal(np.asarray(level0.sh)[order, 0], np.asarray(gaussians.sh)[source_order, 0])
  assert np.asarray(level0.sh).shape[1] == 1


def test_a_missing_ply_is_refused_before_the_run(tmp_path, env):
  proc = subprocess.run(launch_args(tmp_path / "run", {"input.ply": tmp_path / "nope.ply"}, config=SMOKE),
                        env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
  assert proc.returncode != 0
  assert "input.ply" in proc.stdout + proc.stderr and "is not a file" in proc.stdout + proc.stderr
  assert not (tmp_path / "run" / "bundle.npz").exists()


def test_impossible_build_settings_are_refused_naming_the_key(tmp_path, env):
  proc = subprocess.run(launch_args(tmp_path / "run", {"build.max_group_size": 1}, config=SMOKE),
                        env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
  assert proc.returncode != 0
  assert "max_group_size must be >= 2" in proc.stdout + proc.stderr

"""open_source decides the kind of source by what a path holds, in the documented order."""

import json

import numpy as np
import pytest

from jaxlab.splat import save_ply
from jaxlab.view import detect
from jaxlab.view.errors import SourceError
from tests.view.conftest import make_gaussians


@pytest.fixture(name="chosen")
def _chosen(monkeypatch):
  """Replaces the source classes by stand-ins that only record which kind was picked, for which path."""
  for kind, name in (("ply", "PlySource"), ("lod", "LodSource"), ("demos", "DemoSource"), ("run", "RunSource")):
    monkeypatch.setattr(detect, name, lambda path, kind=kind: (kind, path))


def _touch(path, text="{}"):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text)
  return path


@pytest.mark.parametrize("files,target,kind", [
    (["scene.ply"], "scene.ply", "ply"),
    (["asset.npz"], "asset.npz", "lod"),
    (["scene.json"], "scene.json", "lod"),
    (["meta/info.json"], ".", "demos"),
    (["generated/meta/info.json", "config.json"], ".", "demos"),  # a robosplat_generate workdir
    (["bundle.npz", "config.json", "report.json"], ".", "lod"),  # a v3dg_build workdir
    (["layout.json", "bundles/donut.npz"], ".", "lod"),
    (["config.json"], ".", "run"),
    (["checkpoints/100/state/_METADATA"], ".", "run"),
    (["point_cloud/iteration_300/point_cloud.ply"], ".", "run"),
    (["run.lock"], ".", "run"),
    ([], ".", "run"),  # an empty folder: a run that has not written anything yet
])
def test_kind_by_content(tmp_path, chosen, files, target, kind):
  del chosen
  root = tmp_path / "target"
  root.mkdir()
  for name in files:
    _touch(root / name)
  path = root if target == "." else root / target
  assert detect.open_source(path) == (kind, path)


def test_missing_and_unknown_paths_are_source_errors(tmp_path):
  with pytest.raises(SourceError, match="does not exist") as info:
    detect.open_source(tmp_path / "nowhere")
  assert str(tmp_path / "nowhere") in str(info.value)
  notes = _touch(tmp_path / "notes.txt", "hi")
  with pytest.raises(SourceError, match=r"cannot view a \.txt file"):
    detect.open_source(notes)
  folder = tmp_path / "photos"
  _touch(folder / "a.png", "")
  with pytest.raises(SourceError, match="not a viewable folder") as info:
    detect.open_source(folder)
  for looked_for in ("meta/info.json", "generated/meta/info.json", "bundle.npz", "layout.json", "config.json",
                     "checkpoints", "point_cloud", "run.lock"):
    assert looked_for in str(info.value)


def test_real_sources_open(tmp_path, bundle_path):
  ply = tmp_path / "scene.ply"
  save_ply(ply, make_gaussians(8, sh_degree=0))
  assert detect.open_source(ply).kind == "ply"
  assert detect.open_source(bundle_path).kind == "lod"
  run = tmp_path / "run"
  run.mkdir()
  assert detect.open_source(run).kind == "run"
  with pytest.raises(SourceError, match="bad.ply"):  # the chosen source's own error comes through
    detect.open_source(_touch(tmp_path / "bad.ply", "ply\nformat ascii 1.0\n"))
  instance = {"quaternion": [1, 0, 0, 0], "translation": [1, 2, 3]}
  layout = _touch(tmp_path / "scene.json", json.dumps({"assets": [{"name": "a", "bundle": str(bundle_path),
                                                                    "instances": [instance]}]}))
  source = detect.open_source(layout)
  assert source.kind == "lod" and np.allclose(np.asarray(source.scene.instances.translation), [[1, 2, 3]])

"""Multi-SpatialMLLM: the MultiSPA data engine over posed RGB-D scenes and 3D tracks, its scorer, and the
pieces of multi-frame spatial SFT.

- `scene`: the data model (frames with RGB, depth, intrinsics, camera-to-world, instance masks; objects
  with 3D boxes; point tracks) and its conventions.
- `scannet`, `tapvid3d`: readers of the ScanNet export layout and TAPVid-3D npz files.
- `raycast`, `rooms`: the embedded generator (ray-cast rooms with furniture, camera paths, moving boxes).
- `geometry`, `sampling`, `rigid_groups`, `coverage`: projection and the depth test, labels and units,
  overlap-balanced pair sampling, rigid-body grouping of tracks, minimal covering image sets.
- `templates`, `draw`, `subtasks`, `qa`: question and answer templates, visual prompts, the 26 subtasks,
  items in InternVL's conversation jsonl layout.
- `plans`, `*_questions`, `engine`, `source`, `dataset`, `generate`: the engine, as a deterministic
  grain source and a command (`python -m jaxlab.spatial.generate`).
- `scoring`, `score`, `baselines`: the uniform metric, its command (`python -m jaxlab.spatial.score`),
  and the chance and training-prior baselines.
- `vocab`, `sft_source`, `respond`: the digit-level piece vocabulary, multi-image SFT records, and
  batched answers from a jaxlab VLM.
"""

from jaxlab.spatial.engine import build_question, plan_scene, scene_subtasks
from jaxlab.spatial.plans import EngineConfig
from jaxlab.spatial.qa import SpatialQA, read_items, write_items
from jaxlab.spatial.sample import QASample, Skip
from jaxlab.spatial.scannet import read_scannet_scene
from jaxlab.spatial.scene import Frame, SceneError, SceneObject, StaticScene, TrackScene
from jaxlab.spatial.scoring import SpatialReport, is_correct
from jaxlab.spatial.scoring import score as score_predictions  # `score` names the command module.
from jaxlab.spatial.source import MultiSpaSource
from jaxlab.spatial.tapvid3d import read_tapvid3d_npz

__all__ = [
    "EngineConfig",
    "Frame",
    "MultiSpaSource",
    "QASample",
    "SceneError",
    "SceneObject",
    "Skip",
    "SpatialQA",
    "SpatialReport",
    "StaticScene",
    "TrackScene",
    "build_question",
    "is_correct",
    "plan_scene",
    "read_items",
    "read_scannet_scene",
    "read_tapvid3d_npz",
    "scene_subtasks",
    "score_predictions",
    "write_items",
]

"""The editable Gaussian scene of a tabletop: a static background, robot links and one object.

Each rigid part keeps its Gaussians in its own frame, so a frame of a demonstration is the
parts moved by their poses and concatenated:

    scene_t = background ⊕ (link_l posed by FK(q_t)_l for every link) ⊕ object posed by X_t

Links are stored as one padded block [L, M] (link l's Gaussians in row l, inactive padding),
so posing is one `vmap` of the equivariant transform over links, and every frame has the same
number of Gaussians: a demonstration renders as one batched, jitted call.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.splat import Gaussians
from jaxlab.splat.edit import concat_gaussians, transform_gaussians


@flax.struct.dataclass
class TabletopAssets:
  """The parts of a tabletop scene as Gaussians.

  Attributes:
    background: static Gaussians in the world frame (table, tray, floor, walls).
    links_lm: robot link Gaussians with leading dims [L, M], each row in its link's frame.
    link_ids: [L] int32, the index of each row's link in the FK output.
    table_top: [N_background] bool, the background Gaussians of the table top (replaced by
      the appearance edit).
    object: the manipulated object's Gaussians in its body frame (None until one is chosen).
  """

  background: Gaussians
  links_lm: Gaussians
  link_ids: jax.Array
  table_top: jax.Array
  object: Gaussians | None


def stack_links(link_gaussians: list[Gaussians]) -> Gaussians:
  """[L, M] block of link Gaussians, each padded with inactive slots to the longest link."""
  if not link_gaussians:
    raise ValueError("stack_links got no links")
  longest = max(g.num for g in link_gaussians)

  def pad(g: Gaussians) -> Gaussians:
    extra = longest - g.num
    padded = jax.tree.map(lambda x: jnp.concatenate([x, jnp.zeros((extra, *x.shape[1:]), x.dtype)]), g)
    return padded.replace(quats=padded.quats.at[g.num:, 0].set(1.0))

  return jax.tree.map(lambda *xs: jnp.stack(xs), *[pad(g) for g in link_gaussians])


def pose_links(links_lm: Gaussians, link_poses_l44: jax.Array) -> Gaussians:
  """Each link's Gaussians moved by its world pose, flattened to [L * M]."""

  def one(g, pose_44):
    return transform_gaussians(g, pose_44[:3, :3], pose_44[:3, 3])

  posed = jax.vmap(one)(links_lm, link_poses_l44)
  return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), posed)


def compose_frame(
    assets: TabletopAssets,
    link_poses_l44: jax.Array,
    object_pose_44: jax.Array,
    *,
    background: Gaussians | None = None,
) -> Gaussians:
  """One frame's scene: background, posed links and the posed object (jittable, vmappable).

  Args:
    assets: the parts.
    link_poses_l44: world poses of every link the FK returns ([L_fk, 4, 4]); rows are
      picked by `assets.link_ids`.
    object_pose_44: the object's world pose.
    background: an edited background to use instead of `assets.background` (e.g. with the
      table top replaced); the number of Gaussians must stay fixed across frames of a batch.
  """
  links = pose_links(assets.links_lm, link_poses_l44[assets.link_ids])
  obj = transform_gaussians(assets.object, object_pose_44[:3, :3], object_pose_44[:3, 3])
  return concat_gaussians([assets.background if background is None else background, links, obj])


def num_gaussians(assets: TabletopAssets) -> int:
  """Gaussians in one composed frame (active or not)."""
  return int(assets.background.num + np.prod(assets.links_lm.means.shape[:2]) + assets.object.num)

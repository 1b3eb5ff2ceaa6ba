"""Level-of-detail Gaussian bundles and the footprint cut (V3DG).

Offline, `build_bundle` turns one asset into a hierarchy of clusters (median split, merge
and halve, local splatting); `save_bundle` / `load_bundle` keep it in one validated file.
Online, `compose_scene` places bundles by `Instances` (or a layout file, `read_layout`),
and `render_cut` selects, for a camera and tolerance tau, the clusters whose footprints
straddle tau, gathers their Gaussians and renders them with `jaxlab.splat.render`.
"""

from jaxlab.splat.lod.build import BuildReport, BuildSettings, build_bundle
from jaxlab.splat.lod.bundle import BUNDLE_VERSION, Bundle, BundleError, check_bundle, load_bundle, save_bundle
from jaxlab.splat.lod.cut import (
    CutOutput, Selection, SelectionOverflowError, footprints, gather_selected, in_frustum, render_cut, select)
from jaxlab.splat.lod.instances import Instances, check_instances, make_instances, place_bundle, transform_gaussians
from jaxlab.splat.lod.layout import Layout, LayoutError, donut_sea_instances, read_layout, write_layout
from jaxlab.splat.lod.local_splat import LocalSplatSettings, local_splat
from jaxlab.splat.lod.scene import ComposedScene, compose_scene

__all__ = [
    "BUNDLE_VERSION",
    "BuildReport",
    "BuildSettings",
    "Bundle",
    "BundleError",
    "ComposedScene",
    "CutOutput",
    "Instances",
    "Layout",
    "LayoutError",
    "LocalSplatSettings",
    "Selection",
    "SelectionOverflowError",
    "build_bundle",
    "check_bundle",
    "check_instances",
    "compose_scene",
    "donut_sea_instances",
    "footprints",
    "gather_selected",
    "in_frustum",
    "load_bundle",
    "local_splat",
    "make_instances",
    "place_bundle",
    "read_layout",
    "render_cut",
    "save_bundle",
    "select",
    "transform_gaussians",
    "write_layout",
]

"""The subject's scene for the neural pass: the FaceAsset and its photo, read once, turned
into what the fit and the renders share, and the per-view network inputs (numpy -> torch).

Data flows one way: ``load_scene`` reads the asset folder and the photo, ``build_scene``
runs ``neural.geometry``'s pure functions over them in order and returns a ``Scene``
(``SubjectData`` + the photo's view); ``neural.fit`` and ``neural.render`` consume those
results. ``neural.geometry`` never reads files and never imports this module.

``SubjectData`` holds what training and rendering share: T(I_x) and the de-lit albedo in UV
space, the SH lighting l (9,) estimated from the photo, the skin region. ``view_inputs``
turns (posed mesh, detail map, view) into the tensors Tex2Im reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facedet3d.errors import FaceDet3DError
from facedet3d.fit import faceasset
from facedet3d.imaging.maps import resize_square
from facedet3d.neural import geometry as geo


class NeuralInputError(FaceDet3DError):
    exit_code = 2


@dataclass
class SubjectData:
    """uv_size S; texture (S,S,3) sRGB [0,1] T(I_x); albedo (S,S,3) linear de-lit albedo;
    skin_uv (S,S) bool; sh (9,) lighting; detail (S,S) metres D(I_x)."""

    uv_size: int
    texture: np.ndarray
    albedo: np.ndarray
    skin_uv: np.ndarray
    sh: np.ndarray
    detail: np.ndarray


@dataclass
class Scene:
    """The subject in its photo, at the pass's training size.

    subject:    the SubjectData (UV maps at uv_size², the photo's lighting).
    geometry:   the photo-fitted mesh in UV space (uv_size², metres).
    raster:     that mesh rasterised through the photo's view at size².
    view:       the 3x4 view (BFM units -> crop pixels) of the photo's camera.
    crop:       (size, size, 3) float32 sRGB [0, 1] photo crop seen through ``view``.
    photo_name: the photo as ``meta.json`` records it."""

    subject: SubjectData
    geometry: geo.UVGeometry
    raster: geo.ViewRaster
    view: np.ndarray
    crop: np.ndarray
    photo_name: str


def read_asset(asset_dir) -> faceasset.FaceAsset:
    try:
        return faceasset.read(asset_dir)
    except (FileNotFoundError, ValueError, KeyError, TypeError) as exc:
        raise NeuralInputError(f"{asset_dir} is not a FaceAsset folder ({exc}); create one with `facedet3d fit`") from None


def find_photo(asset_dir, asset: faceasset.FaceAsset, photo=None) -> Path:
    """The subject's photo: ``photo`` when given, else the path the fit recorded
    (``meta.photo_path``). Nothing is guessed: a moved photo is named with ``--photo``."""
    where = photo or asset.meta.photo_path
    if not where:
        raise NeuralInputError(f"{asset_dir} records no photo path (fitted by an older version); pass --photo PATH")
    if not Path(where).is_file():
        raise NeuralInputError(f"photo {where} not found; pass --photo PATH (the image the asset was fitted on)")
    return Path(where)


def photo_vertices_units(asset: faceasset.FaceAsset) -> np.ndarray:
    """(N,3) BFM units: the mesh exactly as fitted to the photo (identity + the photo's BFM
    expression), the geometry the photo's projection belongs to."""
    from facedet3d.assets.bfm import load_bfm

    b = load_bfm()
    if b.n_vertices != asset.vertices.shape[0]:
        return geo.units_from_metres(asset.vertices)
    return b.vertices(np.asarray(asset.meta.shape_coeffs, np.float32), np.asarray(asset.meta.exp_coeffs, np.float32))


def load_scene(asset_dir, size: int, uv_size: int, photo=None) -> Scene:
    """Read the FaceAsset folder and its photo (``photo`` overrides ``meta.photo``) and build
    the Scene at ``size``² pixels and ``uv_size``² texels."""
    from facedet3d.fit.photo import load_photo

    asset = read_asset(asset_dir)
    rgb = load_photo(find_photo(asset_dir, asset, photo)).rgb
    return build_scene(asset, rgb, size, uv_size)


def build_scene(asset: faceasset.FaceAsset, photo_rgb: np.ndarray, size: int, uv_size: int) -> Scene:
    """The Scene of an asset and its (H, W, 3) uint8 photo, step by step."""
    # 1. The photo's geometry: the fitted mesh, its view and raster, the mesh in UV space.
    verts_u = photo_vertices_units(asset)
    view = geo.view_projection(asset.meta.pose.projection, asset.meta.box, size)
    raster = geo.view_raster(verts_u, asset.faces, asset.uv, view, size, size)
    geometry = geo.uv_geometry(verts_u * geo.METRES_PER_UNIT, asset.faces, uv_size)
    crop = geo.photo_crop(photo_rgb, asset.meta.box, size)
    # 2. The asset's UV maps at the pass's resolution (texture to [0, 1] sRGB, detail metres).
    texture = (resize_square(asset.texture, uv_size) / 255.0).astype(np.float32)
    detail = resize_square(asset.detail_input, uv_size)
    # 3. Skin region, then the photo's SH lighting fitted over the skin seen in the view.
    skin_uv = geo.skin_mask_uv(texture, geometry.chart)
    sh = geo.estimate_lighting(crop, raster, geometry, raster.sample(skin_uv.astype(np.float32)) > 0.5)
    # 4. De-lit albedo: T / Shading(G_D) under that lighting.
    albedo = geo.delit_albedo(texture, geometry, detail, raster.rotation, sh)
    subject = SubjectData(uv_size, texture, albedo, skin_uv, sh, detail)
    return Scene(subject, geometry, raster, view, crop, str(asset.meta.photo))


def view_inputs(subject: SubjectData, vr: geo.ViewRaster, geometry: geo.UVGeometry,
                details: list[np.ndarray | None], sh: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Tex2Im inputs for one view and B detail maps (one batch row each; None = no details):
    grid (B,H,W,2), mask (B,1,H,W), albedo (B,3,H,W), shading_p / shading_d (B,1,H,W)."""
    sh = subject.sh if sh is None else np.asarray(sh, np.float32)
    if sh.shape != (9,):
        raise NeuralInputError(f"lighting must be 9 SH coefficients, got shape {sh.shape}")
    B = len(details)
    mask = vr.mask.astype(np.float32)
    albedo = vr.sample(subject.albedo).transpose(2, 0, 1)
    sp = vr.shading(geometry.normal, sh)
    sds = [sp if d is None else vr.shading(geo.detailed_normals(geometry, d), sh) for d in details]
    return {"grid": np.repeat(vr.grid[None], B, 0), "mask": np.repeat(mask[None, None], B, 0),
            "albedo": np.repeat(albedo[None], B, 0), "shading_p": np.repeat(sp[None, None], B, 0),
            "shading_d": np.stack(sds)[:, None]}


def to_torch(d: dict[str, np.ndarray], device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).float().to(device) for k, v in d.items()}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() and not os.environ.get("FACEDET3D_NO_CUDA") else "cpu")

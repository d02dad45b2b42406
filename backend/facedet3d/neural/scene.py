"""Per-subject data of the neural pass and the per-view network inputs (numpy -> torch).

``SubjectData`` holds what training and rendering share: T(I_x) and the de-lit albedo in UV
space, the SH lighting l (9,) estimated from the photo, the skin region. ``view_inputs``
turns (posed mesh, detail map, view) into the tensors Tex2Im reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from facedet3d.fit import faceasset
from facedet3d.errors import FaceDet3DError
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


def read_asset(asset_dir) -> faceasset.FaceAsset:
    try:
        return faceasset.read(asset_dir)
    except (FileNotFoundError, ValueError, KeyError, TypeError) as exc:
        raise NeuralInputError(f"{asset_dir} is not a FaceAsset folder ({exc}); create one with `facedet3d fit`") from None


def find_photo(asset_dir, asset: faceasset.FaceAsset, photo=None) -> Path:
    """The subject's photo: ``photo`` when given, else ``meta.photo`` as a path, beside the
    asset folder, or inside it."""
    d = Path(asset_dir)
    cands = [Path(photo)] if photo else [Path(asset.meta.photo), d / asset.meta.photo, d.parent / asset.meta.photo]
    for c in cands:
        if c.is_file():
            return c
    raise NeuralInputError(f"photo {photo or asset.meta.photo!r} not found; pass --photo PATH (the image the asset was fitted on)")


def resize_uv(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[0] == size:
        return img.astype(np.float32)
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(img.astype(np.float32), (size, size), interpolation=interp)


def photo_vertices_units(asset: faceasset.FaceAsset) -> np.ndarray:
    """(N,3) BFM units: the mesh exactly as fitted to the photo (identity + the photo's BFM
    expression), the geometry the photo's projection belongs to."""
    from facedet3d.assets.bfm import load_bfm

    b = load_bfm()
    if b.n_vertices != asset.vertices.shape[0]:
        return geo.units_from_metres(asset.vertices)
    return b.vertices(np.asarray(asset.meta.shape_coeffs, np.float32), np.asarray(asset.meta.exp_coeffs, np.float32))


def photo_crop(rgb: np.ndarray, box, side: int) -> np.ndarray:
    """(side, side, 3) float32 sRGB [0, 1] crop of the photo around the face box (the same
    square as ``geometry.view_projection``)."""
    m = geo.crop_matrix(box, side)
    a = np.array([[m[0, 0], 0, m[0, 3]], [0, m[1, 1], m[1, 3]]], np.float64)
    out = cv2.warpAffine(rgb, a, (side, side), flags=cv2.INTER_AREA if m[0, 0] < 1 else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    return out.astype(np.float32) / 255.0


def prepare_subject(asset: faceasset.FaceAsset, photo_rgb: np.ndarray, size: int, uv_size: int
                    ) -> tuple[SubjectData, geo.ViewRaster, np.ndarray, np.ndarray]:
    """SubjectData plus the input view's raster, its 3x4 view and the photo crop (size²)."""
    verts_u = photo_vertices_units(asset)
    view = geo.view_projection(asset.meta.pose.projection, asset.meta.box, size)
    vr = geo.view_raster(verts_u, asset.faces, asset.uv, view, size, size)
    g = geo.uv_geometry(verts_u * geo.METRES_PER_UNIT, asset.faces, uv_size)
    tex = resize_uv(asset.texture, uv_size) / 255.0
    skin_uv = geo.skin_mask_uv(tex, g.chart)
    crop = photo_crop(photo_rgb, asset.meta.box, size)
    sh = geo.estimate_lighting(crop, vr, g, vr.sample(skin_uv.astype(np.float32)) > 0.5)
    detail = resize_uv(asset.detail_input, uv_size)
    # De-lit albedo: T / Shading(G_D) with the photo's camera (texels seen in any view share it).
    n_cam = geo.detailed_normals(g, detail) @ vr.rotation.T.astype(np.float32)
    shade_uv = geo.sh_shading(n_cam, sh)
    albedo = np.clip(geo.srgb_to_linear(tex) / np.maximum(shade_uv, 0.2)[..., None], 0.0, 1.0)
    return SubjectData(uv_size, tex.astype(np.float32), albedo.astype(np.float32), skin_uv, sh, detail), vr, view, crop


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

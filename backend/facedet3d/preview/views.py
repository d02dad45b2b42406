"""Pictures of several meshes together (face + head parts) from any yaw/pitch.

Orthographic views of model-space meshes (metres, +Y up, +Z toward the camera at yaw 0),
each mesh either textured (UV + sRGB texture, like ``preview.render``) or with per-vertex
sRGB colours, Lambert-shaded from one light near the viewer. Used by ``facedet3d pose``
(png with the head) and by the turntable pictures.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facedet3d.geometry import raster

_LIGHT = np.array([0.35, 0.45, 0.82])  # view space (x right, y up, z toward the viewer)


@dataclass
class Item:
    """One mesh: vertices (N, 3) metres, faces (F, 3); colour (N, 3) sRGB 0..255 per
    vertex, or texture (S, S, 3) sRGB uint8 with uv (N, 2) (v up)."""

    vertices: np.ndarray
    faces: np.ndarray
    colour: np.ndarray | None = None
    texture: np.ndarray | None = None
    uv: np.ndarray | None = None


def rotation(yaw_deg: float, pitch_deg: float = 0.0) -> np.ndarray:
    """(3, 3) model -> view: turn the model by yaw about +Y (positive shows its left
    side, i.e. +X), then by pitch about +X (positive looks from above)."""
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return rx @ ry


def render_items(items: list[Item], yaw_deg: float = 0.0, pitch_deg: float = 0.0, side: int = 384,
                 centre: np.ndarray | None = None, extent: float | None = None,
                 background: int = 40, to_image=None) -> np.ndarray:
    """(side, side, 3) uint8 RGB. ``centre`` (3,) and ``extent`` (metres shown across the
    picture) default to the bounding box of all items. ``to_image`` (optional) maps model
    vertices (P, 3) to image [x right px, y down px, z larger = closer] instead (the photo's
    camera); then yaw/pitch/centre/extent are ignored."""
    allv = np.concatenate([it.vertices for it in items])
    if to_image is None:
        rot = rotation(yaw_deg, pitch_deg)
        c = allv.mean(0) if centre is None else np.asarray(centre)
        ext = float(np.ptp(allv, 0).max() * 1.05) if extent is None else extent

        def to_image(v):  # noqa: E306
            q = (np.asarray(v, np.float64) - c) @ rot.T
            return np.c_[side / 2 + q[:, 0] * side / ext, side / 2 - q[:, 1] * side / ext, q[:, 2] * side / ext]
    offs = np.cumsum([0] + [len(it.vertices) for it in items])
    v_img = np.concatenate([to_image(it.vertices) for it in items]).astype(np.float32)
    faces = np.concatenate([it.faces + o for it, o in zip(items, offs)])
    owner = np.concatenate([np.full(len(it.faces), k) for k, it in enumerate(items)])
    ras = raster.rasterize(v_img, faces, side, side)
    inside = ras.tri_id >= 0
    n = raster.vertex_normals(v_img * np.array([1.0, -1.0, 1.0], np.float32), faces)
    n_pix = raster.interpolate(ras, n.astype(np.float32))
    n_pix /= np.maximum(np.linalg.norm(n_pix, axis=-1, keepdims=True), 1e-8)
    light = _LIGHT / np.linalg.norm(_LIGHT)
    lam = np.abs(n_pix @ light.astype(np.float32))  # both windings: parts need no culling
    shade = 0.3 + 0.7 * lam
    out = np.full((side, side, 3), background, np.float32)
    who = np.where(inside, owner[np.maximum(ras.tri_id, 0)], -1)
    for k, it in enumerate(items):
        sel = who == k
        if not sel.any():
            continue
        if it.texture is not None:
            uv = np.zeros((len(v_img), 2), np.float32)
            uv[offs[k]:offs[k + 1]] = it.uv
            tuv = raster.interpolate(ras, uv)
            s = it.texture.shape[0]
            mx = (tuv[..., 0] * s - 0.5).astype(np.float32)
            my = ((1.0 - tuv[..., 1]) * s - 0.5).astype(np.float32)
            col = cv2.remap(it.texture, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        else:
            vc = np.zeros((len(v_img), 3), np.float32)
            vc[offs[k]:offs[k + 1]] = (np.full((len(it.vertices), 3), 200.0) if it.colour is None else it.colour)
            col = raster.interpolate(ras, vc)
        out[sel] = (col * shade[..., None])[sel]
    return np.clip(out, 0, 255).astype(np.uint8)

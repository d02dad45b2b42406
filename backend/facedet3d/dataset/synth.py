"""Synthesized targets: the subject posed in another expression and view, with DetP's
predicted wrinkles, through the software rasteriser.

Geometry: the FaceAsset's neutral mesh plus its FACS shapes at the target AUs
(``rig.pose.posed_vertices``), turned by the view's yaw about the camera's vertical axis
through the head's centre (positive turns the nose toward image right), projected with the
photo's own camera into the photo's output frame. Details: DetP's D~(Iy) for the target
AUs from the photo's D(Ix) (``DetailPredictor.for_asset``), added to depth and normals as
the photo's own detail is (``maps.add_detail``). RGB: the unwrapped texture looked up per
pixel, times the shading ratio of the detailed to the smooth normals under the photo's
fitted lighting (so the wrinkles show; the texture's baked lighting is otherwise kept) —
the software raster (``--renderer raster``); Blender renders the same geometry with
``--renderer cycles|eevee`` (``dataset.blender``).
"""

from __future__ import annotations

import numpy as np

from facedet3d.api.expressions import preset_sides
from facedet3d.assets.bfm import METRES_PER_UNIT
from facedet3d.dataset import maps as maps_mod
from facedet3d.dataset.camera import Camera, Frame
from facedet3d.dataset.quality import sh9

_GAMMA = 2.2  # sRGB <-> linear for the shading ratio (an approximation is plenty here)


def yaw_matrix(deg: float) -> np.ndarray:
    t = np.radians(deg)
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def posed_units(asset, preset: str, yaw_deg: float, rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) BFM units of the subject in ``preset``, turned by ``yaw_deg`` in the camera
    frame; and the target AU vector (17,)."""
    from facedet3d.rig.pose import posed_vertices, target_aus

    aus, sides = target_aus(None, preset)
    X = posed_vertices(asset, aus, sides).astype(np.float64) / METRES_PER_UNIT
    if yaw_deg:
        R = np.asarray(rotation, np.float64)
        M = R.T @ yaw_matrix(yaw_deg) @ R  # model-space rotation that is a camera-space yaw
        c = X.mean(0)
        X = (X - c) @ M.T + c
    return X, aus


def textured_rgb(texture: np.ndarray, m: maps_mod.Maps, smooth_normals: np.ndarray,
                 sh_coeffs: np.ndarray | None) -> np.ndarray:
    """(H, W, 3) uint8: texture at each pixel's UV times the detail shading ratio."""
    tex = maps_mod.sample_uv(texture, m.uv, m.mask).astype(np.float32) / 255.0
    if sh_coeffs is not None:
        sel = m.mask
        n1 = m.normals[sel].astype(np.float64)
        n0 = smooth_normals[sel].astype(np.float64)
        s1, s0 = sh9(n1) @ sh_coeffs, sh9(n0) @ sh_coeffs
        ratio = np.ones(len(s0))
        good = s0 > 0.05 * max(float(np.median(s0)), 1e-6)
        ratio[good] = np.clip(s1[good] / s0[good], 0.6, 1.6)
        lin = tex[sel] ** _GAMMA * ratio[:, None].astype(np.float32)
        tex[sel] = np.clip(lin, 0.0, 1.0) ** (1.0 / _GAMMA)
    return (tex * 255.0 + 0.5).astype(np.uint8)


def target_geometry(asset, bfm, projection, rotation, frame: Frame, cam: Camera, preset: str, yaw_deg: float,
                    predictor, detail_size: int) -> dict:
    """One target's geometry, whatever renders its RGB: {'maps' (the raster's depth /
    normals / mask, details added), 'smooth_normals', 'detail_uv' (S, S) metres,
    'verts_cam' (N, 3) metres in the camera frame, 'aus', 'detail_max_m', 'landmarks68'}."""
    X, aus = posed_units(asset, preset, yaw_deg, rotation)
    vi = maps_mod.image_vertices(X, projection, rotation, frame)
    m = maps_mod.render_maps(vi, bfm.faces, frame, cam, uv=bfm.uv)
    smooth = m.normals.copy()
    d_y = predictor.for_asset(asset, aus, size=detail_size, sides=preset_sides(preset))
    d_px = maps_mod.add_detail(m, d_y, cam)
    return {"maps": m, "smooth_normals": smooth, "detail_uv": d_y, "verts_cam": maps_mod.camera_vertices(vi, cam),
            "aus": aus, "detail_max_m": float(np.abs(d_px).max()) if d_px.size else 0.0,
            "landmarks68": vi[bfm.landmarks, :2]}


def render_target(asset, bfm, projection, rotation, frame: Frame, cam: Camera, preset: str, yaw_deg: float,
                  predictor, detail_size: int, sh_coeffs) -> dict:
    """One synthesized target through the software raster: ``target_geometry`` plus
    {'rgb', 'depth', 'normals', 'mask'}."""
    g = target_geometry(asset, bfm, projection, rotation, frame, cam, preset, yaw_deg, predictor, detail_size)
    m = g["maps"]
    rgb = textured_rgb(asset.texture, m, g["smooth_normals"], sh_coeffs)
    return {**g, "rgb": rgb, "depth": m.depth, "normals": m.normals, "mask": m.mask}

"""Bake Details: the detail map of every frame (batched backend calls, repeated AU vectors
computed once), smoothed over time with a Savitzky-Golay filter (as in the paper's
supplementary), written as a float EXR image sequence beside the .blend, and the Displace
texture and material switched to it, so renders, farms and reopened files need no backend.
"""

from __future__ import annotations

import os

import bpy
import numpy as np

from . import live
from .adapters import displacement
from .properties import expression_row

SEQ_PREFIX = "detail_"


def savgol_weights(window: int, order: int, pos: int) -> np.ndarray:
    """Weights w (window,) so that sum_j w_j y_j is the value at sample ``pos`` of the
    least-squares polynomial of degree ``order`` through y_0..y_{window-1}."""
    x = np.arange(window, dtype=np.float64)
    vander = np.vander(x, order + 1, increasing=True)
    return np.vander(np.array([float(pos)]), order + 1, increasing=True)[0] @ np.linalg.pinv(vander)


def savgol_smooth(maps: np.ndarray, window: int = 7, order: int = 2) -> np.ndarray:
    """Savitzky-Golay along axis 0 of (T,...) maps; edges use the polynomial of the first/last
    full window (scipy's mode="interp"). Short sequences shrink the window."""
    t = len(maps)
    window = min(window, t if t % 2 else t - 1)
    if window <= order or window < 3:
        return np.asarray(maps, np.float32).copy()
    half = window // 2
    out = np.empty_like(maps, dtype=np.float32)
    for i in range(t):
        start = min(max(i - half, 0), t - window)
        w = savgol_weights(window, order, i - start).astype(np.float32)
        out[i] = np.tensordot(w, maps[start:start + window], axes=1)
    return out


def frame_aus(scene, obj, frames) -> np.ndarray:
    """(T,19) expression rows of ``obj`` at each frame (17 AUs + left/right side multipliers;
    animation evaluated, no live requests)."""
    keep = scene.frame_current
    rows = []
    with live.quiet():
        for f in frames:
            scene.frame_set(int(f))
            rows.append(expression_row(obj))
        scene.frame_set(keep)
    return np.asarray(rows, np.float32)


def predict_frames(client, obj, aus: np.ndarray, size: int, batch: int = 8, progress=None) -> np.ndarray:
    """(T,S,S) maps for (T,19) expression rows: unique rows only, ``batch`` per backend call."""
    uniq, inverse = np.unique(np.round(aus, 5), axis=0, return_inverse=True)
    out = np.empty((len(uniq), size, size), np.float32)
    for i in range(0, len(uniq), batch):
        res = client.detail(live.make_request(obj, uniq[i:i + batch], size))
        out[i:i + batch] = res.maps
        if progress:
            progress(f"details {min(i + batch, len(uniq))}/{len(uniq)}")
    return out[np.asarray(inverse).reshape(-1)]


def write_sequence(maps: np.ndarray, folder: str) -> list[str]:
    """Write (T,S,S) metres as ``detail_0001.exr`` ... (float32 EXR, RGB = value)."""
    os.makedirs(folder, exist_ok=True)
    size = maps.shape[1]
    scratch = bpy.data.images.new("FaceDet3D bake scratch", size, size, alpha=False, float_buffer=True, is_data=True)
    paths = []
    try:
        scratch.file_format = "OPEN_EXR"
        scratch.use_half_precision = False
        for t, m in enumerate(maps):
            path = os.path.join(folder, f"{SEQ_PREFIX}{t + 1:04d}.exr")
            displacement.set_pixels(scratch, m)
            scratch.filepath_raw = path
            scratch.save()
            paths.append(path)
    finally:
        bpy.data.images.remove(scratch)
    return paths


def bake_details(context, obj, client, folder: str, window: int = 7, order: int = 2, progress=None) -> list[str]:
    """Bake frames scene.frame_start..frame_end of ``obj`` into ``folder``; returns the paths."""
    scene = context.scene
    s = obj.facedet3d
    frames = list(range(scene.frame_start, scene.frame_end + 1))
    size = int(s.detail_resolution)
    aus = frame_aus(scene, obj, frames)
    maps = predict_frames(client, obj, aus, size, progress=progress)
    maps = savgol_smooth(maps, window, order)
    paths = write_sequence(maps, folder)
    name = f"FaceDet3D baked {obj.name}"
    old = bpy.data.images.get(name)
    if old is not None:
        bpy.data.images.remove(old)
    seq = bpy.data.images.load(paths[0])
    seq.name = name
    seq.source = "SEQUENCE"
    seq.colorspace_settings.name = "Non-Color"
    displacement.use_sequence(obj, seq, scene.frame_start, len(frames))
    s.baked_dir = bpy.path.relpath(folder) if bpy.data.filepath else folder
    obj.update_tag()
    return paths


def unbake(obj) -> None:
    """Back to the live image (the baked files stay on disk)."""
    live_img = bpy.data.images.get(f"FaceDet3D detail {obj.name}")
    md = displacement.modifier(obj)
    if live_img is not None and md is not None:
        md.texture.image = live_img
        node = obj.active_material.node_tree.nodes.get("FaceDet3D Detail")
        if node is not None:
            node.image = live_img
    obj.facedet3d.baked_dir = ""

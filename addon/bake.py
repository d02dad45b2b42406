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


def read_rows_steps(scene, obj, frames, share: float = 0.1):
    """Step generator: (T,19) expression rows of ``obj`` at ``frames``, 4 frames per step (a
    frame_set with shape keys and the Displace modifier is 20-40 ms), progress 0..``share``;
    the current frame is restored and no live requests are made."""
    keep, rows, n = scene.frame_current, [], len(frames)
    try:
        for i in range(0, n, 4):
            with live.quiet():
                for f in frames[i:i + 4]:
                    scene.frame_set(f)
                    rows.append(expression_row(obj))
            yield (f"reading AUs {min(i + 4, n)}/{n}", share * min(i + 4, n) / n)
    finally:
        with live.quiet():
            scene.frame_set(keep)
    return np.asarray(rows, np.float32)


def predict_frames(client, obj, aus: np.ndarray, size: int, batch: int = 8, progress=None) -> np.ndarray:
    """(T,S,S) maps for (T,19) expression rows: unique rows only, ``batch`` per backend call."""
    return predict_rows(client, live.make_request(obj, aus[:1], size), aus, batch, progress)


def predict_rows(client, base_req, aus: np.ndarray, batch: int = 8, progress=None, cancelled=None) -> np.ndarray:
    """``predict_frames`` without bpy (runs in a worker): ``base_req`` is a DetailRequest
    whose ``target_aus`` (and ``sides``) are replaced batch by batch. Returns None when ``cancelled()``."""
    import dataclasses

    uniq, inverse = np.unique(np.round(aus, 5), axis=0, return_inverse=True)
    size = int(base_req.size)
    out = np.empty((len(uniq), size, size), np.float32)
    for i in range(0, len(uniq), batch):
        if cancelled is not None and cancelled():
            return None
        rows = np.asarray(uniq[i:i + batch], np.float32)  # 17 AUs (+ left/right side multipliers)
        res = client.detail(dataclasses.replace(base_req, target_aus=rows[:, :17],
                                                sides=rows[:, 17:19] if rows.shape[1] == 19 else None))
        out[i:i + batch] = res.maps
        if progress:
            progress(f"details {min(i + batch, len(uniq))}/{len(uniq)}")
    return out[np.asarray(inverse).reshape(-1)]


def write_sequence(maps: np.ndarray, folder: str) -> list[str]:
    """Write (T,S,S) metres as ``detail_0001.exr`` ... (float32 EXR, RGB = value)."""
    os.makedirs(folder, exist_ok=True)
    with _scratch(maps.shape[1]) as scratch:
        return [_write_one(scratch, m, folder, t) for t, m in enumerate(maps)]


def bake_steps(context, obj, client, folder: str, window: int = 7, order: int = 2,
               keyframe_shape_keys: bool = False, task=None):
    """Step generator (``jobs``) of a bake of frames scene.frame_start..frame_end of ``obj``
    into ``folder``. ``client`` may be a callable that returns one (started in a worker).
    With ``keyframe_shape_keys`` the driven shape-key values are keyed too, so the .blend
    plays without the add-on (render farms). Returns the written paths."""
    from .jobs import Background

    scene = context.scene
    s = obj.facedet3d
    frames = list(range(scene.frame_start, scene.frame_end + 1))
    n = len(frames)
    base = live.make_request(obj, None, int(s.detail_resolution))  # the rows are replaced per batch
    aus = yield from read_rows_steps(scene, obj, frames, 0.1)
    if callable(client):
        client = yield Background("connecting to the backend", client, 0.1)
    cancelled = task.cancelled if task is not None else None
    maps = yield Background(f"predicting {len(np.unique(np.round(aus, 5), axis=0))} detail maps",
                            lambda: predict_rows(client, base, aus, cancelled=cancelled), 0.15)
    if maps is None:
        return []  # cancelled (the task reports it)
    maps = yield Background("smoothing over time", lambda: savgol_smooth(maps, window, order), 0.6)
    os.makedirs(folder, exist_ok=True)
    paths = []
    with _scratch(maps.shape[1]) as scratch:
        for t, m in enumerate(maps):
            paths.append(_write_one(scratch, m, folder, t))
            yield (f"writing {t + 1}/{n}", 0.65 + 0.25 * (t + 1) / n)
    name = f"FaceDet3D baked {obj.name}"
    old = bpy.data.images.get(name)
    if old is not None:
        bpy.data.images.remove(old)
    seq = bpy.data.images.load(paths[0])
    seq.name = name
    seq.source = "SEQUENCE"
    seq.colorspace_settings.name = "Non-Color"
    displacement.use_sequence(obj, seq, scene.frame_start, n)
    s.baked_dir = bpy.path.relpath(folder) if bpy.data.filepath else folder
    obj.update_tag()
    if keyframe_shape_keys:
        yield ("keying shape keys", 0.92)
        keyframe_shapes(scene, obj, frames)
    return paths


def bake_details(context, obj, client, folder: str, window: int = 7, order: int = 2, progress=None,
                 keyframe_shape_keys: bool = False) -> list[str]:
    """Bake here and now (batch jobs, tests); returns the paths."""
    from . import jobs

    return jobs.run_steps("Bake", bake_steps(context, obj, client, folder, window, order, keyframe_shape_keys),
                          progress)


SHAPES_ACTION = "FaceDet3D baked shape keys"


def keyframe_shapes(scene, obj, frames) -> None:
    """Key every driven shape key at each frame with its current (driven) value and mute the
    AU drivers: a .blend that plays without the add-on (drivers read ``facedet3d.auNN``,
    which only exists while the add-on is enabled). ``unbake`` reverses it."""
    from .adapters import animation

    with live.quiet():
        names, vals = animation.sample_shape_keys(scene, obj, frames)
    key = obj.data.shape_keys
    for fc in key.animation_data.drivers if key.animation_data else ():
        fc.mute = True
    fcs, action = animation._fcurves(key, SHAPES_ACTION)
    action.name = SHAPES_ACTION
    fr = np.asarray(frames)
    for k, nm in enumerate(names):
        animation.set_keys(fcs, f'key_blocks["{nm}"].value', fr, vals[:, k], group="", interpolation="LINEAR")


def _unkey_shapes(obj) -> None:
    key = obj.data.shape_keys
    ad = key.animation_data if key else None
    if ad is None:
        return
    for fc in ad.drivers:
        fc.mute = False
    action = ad.action
    if action is not None and action.name.startswith(SHAPES_ACTION):
        ad.action = None
        if action.users == 0:
            bpy.data.actions.remove(action)


class _scratch:
    def __init__(self, size):
        self.size = size

    def __enter__(self):
        self.img = bpy.data.images.new("FaceDet3D bake scratch", self.size, self.size, alpha=False,
                                       float_buffer=True, is_data=True)
        self.img.file_format = "OPEN_EXR"
        self.img.use_half_precision = False
        return self.img

    def __exit__(self, *exc):
        bpy.data.images.remove(self.img)


def _write_one(scratch, m, folder: str, t: int) -> str:
    path = os.path.join(folder, f"{SEQ_PREFIX}{t + 1:04d}.exr")
    displacement.set_pixels(scratch, m)
    scratch.filepath_raw = path
    scratch.save()
    return path


def unbake(obj) -> None:
    """Back to the live image (the baked files stay on disk)."""
    live_img = bpy.data.images.get(f"FaceDet3D detail {obj.name}")
    md = displacement.modifier(obj)
    if live_img is not None and md is not None:
        md.texture.image = live_img
        node = obj.active_material.node_tree.nodes.get("FaceDet3D Detail")
        if node is not None:
            node.image = live_img
    _unkey_shapes(obj)
    obj.facedet3d.baked_dir = ""

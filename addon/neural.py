"""The neural render pass in Blender (paper Sec. 3.3): per frame, Cycles renders the face's
UV, Normal and alpha passes twice through a camera framing the face as the pass was trained
(the face box plus a 12 % margin, at its training size): once with the details on (Displace
modifier and material bump: the detailed geometry) and once off (the proxy geometry). The
backend turns the two into a neural frame with and without details
(``facedet3d.neural.passes``); they are written as ``neural/####.png`` and
``neural_proxy/####.png`` beside the engine's ``frames/``. When the face material has the
cavity term, its exponent comes along as a Value AOV (``CAVITY_PASS``) and the backend darkens
the detailed frame by it, as the material darkens the Cycles frame (0 in the proxy passes,
where ``details_off`` sets the term to 1).

The pass must be fitted to the subject first (minutes; ``fit`` does it once, the weights
stay in the FaceAsset folder).
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager

import bpy
import numpy as np

from . import render
from .adapters import camera as camera_ad, displacement, material
from .client import T

CAMERA = "FaceDet3D Neural Camera"


def asset_dir(obj) -> str:
    """The face's FaceAsset folder (absolute); read on the main thread."""
    s = obj.facedet3d
    d = bpy.path.abspath(s.asset_dir) if s.asset_dir else ""
    if not d or not os.path.isdir(d):
        raise RuntimeError(f"{obj.name} has no FaceAsset folder on disk; import the photo again")
    return d


def is_fitted(folder: str) -> bool:
    """Whether the FaceAsset ``folder`` holds a fitted pass (its ``neural.safetensors``)."""
    return os.path.isfile(os.path.join(folder, "neural.safetensors"))


def photo_path(obj) -> str:
    """The photo the face was fitted on when its path is known here, else "" (the backend
    then looks beside the FaceAsset folder)."""
    p = bpy.path.abspath(obj.facedet3d.photo) if obj.facedet3d.photo else ""
    return p if p and os.path.isfile(p) else ""


def fit(client, folder: str, photo: str = "", steps: int = 0, progress=None) -> "T.NeuralInfo":
    """Fit the subject's neural pass on ``photo`` (``steps`` 0 = the backend's default), or
    reuse the one its FaceAsset ``folder`` holds (no bpy: safe in a worker thread)."""
    if progress:
        progress("fitting the neural pass to the photo (minutes on a CPU; once per subject)")
    return client.neural_fit(T.NeuralFitCall(asset_dir=folder, photo=photo, steps=int(steps)))


def neural_camera(scene, obj, info) -> bpy.types.Object:
    """The crop camera for ``info`` (created and linked once, then updated)."""
    photo_cam = obj.facedet3d.camera
    if photo_cam is None or camera_ad.PX_PER_M not in photo_cam:
        raise RuntimeError(f"{obj.name} has lost its photo camera; import the photo again")
    return camera_ad.crop_camera(scene, CAMERA, photo_cam, info.crop, int(info.size))


@contextmanager
def _pass_settings(scene, cam, size: int, cavity: bool = False):
    """Cycles, one sample without pixel filter (exact UVs and normals per pixel), UV and
    Normal passes (and with ``cavity`` the cavity AOV), transparent film, ``cam`` at size²;
    everything restored afterwards."""
    r, vl, st = scene.render, scene.view_layers[0], scene.render.image_settings
    aov = None
    saved = (r.engine, scene.camera, r.resolution_x, r.resolution_y, r.resolution_percentage, r.film_transparent,
             vl.use_pass_uv, vl.use_pass_normal)
    saved_file = {k: getattr(st, k) for k in ("media_type", "file_format", "color_mode", "color_depth") if hasattr(st, k)}
    saved_cycles = (scene.cycles.samples, scene.cycles.filter_width, scene.cycles.use_denoising,
                    scene.cycles.use_adaptive_sampling, scene.cycles.device)
    try:
        r.engine, scene.camera = "CYCLES", cam
        r.resolution_x = r.resolution_y = int(size)
        r.resolution_percentage, r.film_transparent = 100, True
        vl.use_pass_uv = vl.use_pass_normal = True
        c = scene.cycles
        c.samples, c.filter_width, c.use_denoising, c.use_adaptive_sampling, c.device = 1, 0.01, False, False, "CPU"
        if cavity and T.CAVITY_PASS not in vl.aovs:
            aov = vl.aovs.add()
            aov.name, aov.type = T.CAVITY_PASS, "VALUE"
        yield
    finally:
        if aov is not None:
            vl.aovs.remove(aov)
        (r.engine, scene.camera, r.resolution_x, r.resolution_y, r.resolution_percentage, r.film_transparent,
         vl.use_pass_uv, vl.use_pass_normal) = saved
        c = scene.cycles
        c.samples, c.filter_width, c.use_denoising, c.use_adaptive_sampling, c.device = saved_cycles
        for k, v in saved_file.items():
            setattr(st, k, v)


def _render_passes(scene, path: str) -> None:
    bpy.ops.render.render(write_still=False)
    render.save_image(bpy.data.images["Render Result"], scene, path, "EXR")


def write_png(rgb: np.ndarray, path: str) -> None:
    """(H, W, 3) uint8 sRGB -> PNG through a temporary Blender image (row 0 = top)."""
    h, w = rgb.shape[:2]
    img = bpy.data.images.new("FaceDet3D neural tmp", w, h, alpha=False)
    try:
        rgba = np.ones((h, w, 4), np.float32)
        rgba[..., :3] = rgb[::-1].astype(np.float32) / 255.0
        img.pixels.foreach_set(rgba.reshape(-1))
        img.filepath_raw, img.file_format = path, "PNG"
        img.save()
    finally:
        bpy.data.images.remove(img)


def render_frames(context, obj, client, out_dir: str, frames=None, info=None, progress=None) -> dict:
    """Neural frames of ``obj`` for ``frames`` (default the scene range) into
    ``out_dir/neural/`` and ``out_dir/neural_proxy/``. Returns {"frames", "proxy",
    "s_per_frame", "backend_ms", "info"}."""
    scene = context.scene
    folder = asset_dir(obj)
    info = info or fit(client, folder, photo_path(obj), progress=progress)
    cam = neural_camera(scene, obj, info)
    frames = list(frames or range(scene.frame_start, scene.frame_end + 1))
    ndir, pdir = os.path.join(out_dir, "neural"), os.path.join(out_dir, "neural_proxy")
    os.makedirs(ndir, exist_ok=True)
    os.makedirs(pdir, exist_ok=True)
    out = {"frames": [], "proxy": [], "backend_ms": 0.0, "info": info}
    cavity = material.has_cavity_pass(obj.active_material)
    with tempfile.TemporaryDirectory(prefix="facedet3d_passes_") as tmp, _pass_settings(scene, cam, info.size, cavity):
        det_exr, prx_exr = os.path.join(tmp, "detailed.exr"), os.path.join(tmp, "proxy.exr")

        def one(f):
            _render_passes(scene, det_exr)
            with displacement.details_off(obj):
                _render_passes(scene, prx_exr)
            w2c = np.asarray(cam.matrix_world.to_3x3().normalized().transposed(), np.float64)
            res = client.neural_frame(T.NeuralFrameRequest(folder, det_exr, prx_exr, w2c.tolist()))
            out["backend_ms"] += res.ms
            for img, sub, key in ((res.image, ndir, "frames"), (res.image_proxy, pdir, "proxy")):
                out[key].append(os.path.join(sub, f"{f:04d}.png"))
                write_png(img, out[key][-1])

        out["s_per_frame"] = render.frame_loop(scene, frames, one, progress, "neural frame")
    return out

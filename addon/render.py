"""Render: Eevee (default), Cycles or Workbench; PNG frames into a folder; with passes on,
Cycles also writes UV, normal, depth, position and diffuse colour as one multilayer EXR per
frame (``passes/####.exr``) for the neural renderer and RGB-D datasets."""

from __future__ import annotations

import os
import time

import bpy

from . import live

ENGINE_IDS = {"eevee": "BLENDER_EEVEE", "cycles": "CYCLES", "workbench": "BLENDER_WORKBENCH"}


def engine_id(name: str) -> str:
    """Engine id for this Blender ('BLENDER_EEVEE' was 'BLENDER_EEVEE_NEXT' in 4.2-4.5)."""
    eid = ENGINE_IDS.get(name.lower(), name)
    items = bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items.keys()
    if eid == "BLENDER_EEVEE" and eid not in items and "BLENDER_EEVEE_NEXT" in items:
        return "BLENDER_EEVEE_NEXT"
    return eid


def configure(scene, engine: str = "eevee", samples: int = 16, passes: bool = False) -> None:
    scene.render.engine = engine_id(engine)
    eid = scene.render.engine
    if eid.startswith("BLENDER_EEVEE"):
        scene.eevee.taa_render_samples = max(1, samples)
    elif eid == "CYCLES":
        scene.cycles.device = "CPU"
        scene.cycles.samples = max(1, samples)
        scene.cycles.use_denoising = False
        scene.cycles.use_adaptive_sampling = False
    else:
        shading = scene.display.shading
        shading.light = "STUDIO"
        shading.color_type = "TEXTURE"
    vl = scene.view_layers[0]
    want = passes and eid == "CYCLES"
    vl.use_pass_uv = vl.use_pass_normal = vl.use_pass_z = want
    vl.use_pass_diffuse_color = vl.use_pass_position = want
    scene.render.film_transparent = False


def save_image(img, scene, path: str, fmt: str) -> None:
    """Save a render result as 8-bit PNG ("PNG") or 32-bit multilayer EXR with every pass ("EXR")."""
    st = scene.render.image_settings
    if fmt == "PNG":
        if hasattr(st, "media_type"):
            st.media_type = "IMAGE"
        st.file_format, st.color_mode, st.color_depth = "PNG", "RGB", "8"
    else:
        if hasattr(st, "media_type"):  # Blender 5.0
            st.media_type = "MULTI_LAYER_IMAGE"
        st.file_format = "OPEN_EXR_MULTILAYER"
        st.color_depth = "32"
        st.exr_codec = "ZIP"
    img.save_render(path, scene=scene)


def frame_loop(scene, frames, render_one, progress=None, label: str = "frame") -> float:
    """Set each of ``frames`` (live, unbaked detail maps flushed first, so the frame renders
    with its own map), call ``render_one(frame)``, report progress; the current frame is
    restored. Returns the mean seconds per frame."""
    keep, times = scene.frame_current, []
    try:
        for f in frames:
            t0 = time.perf_counter()
            scene.frame_set(f)
            live.flush()
            render_one(f)
            times.append(time.perf_counter() - t0)
            if progress:
                progress(f"{label} {f} ({times[-1]:.1f} s)")
    finally:
        scene.frame_set(keep)
    return sum(times) / max(len(times), 1)


def render_frames(context, out_dir: str, frames=None, passes: bool = False, progress=None) -> dict:
    """Render ``frames`` (default the scene range) to ``out_dir/frames/####.png`` (and
    ``out_dir/passes/####.exr``). Returns {"frames": paths, "passes": paths, "s_per_frame"}."""
    scene = context.scene
    frames = list(frames or range(scene.frame_start, scene.frame_end + 1))
    with_passes = passes and scene.render.engine == "CYCLES"
    fdir, pdir = os.path.join(out_dir, "frames"), os.path.join(out_dir, "passes")
    os.makedirs(fdir, exist_ok=True)
    if with_passes:
        os.makedirs(pdir, exist_ok=True)
    out = {"frames": [], "passes": []}

    def one(f):
        bpy.ops.render.render(write_still=False)
        img = bpy.data.images["Render Result"]
        out["frames"].append(os.path.join(fdir, f"{f:04d}.png"))
        save_image(img, scene, out["frames"][-1], "PNG")
        if with_passes:
            out["passes"].append(os.path.join(pdir, f"{f:04d}.exr"))
            save_image(img, scene, out["passes"][-1], "EXR")

    out["s_per_frame"] = frame_loop(scene, frames, one, progress)
    return out

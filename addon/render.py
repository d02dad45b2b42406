"""Render: Eevee (default), Cycles or Workbench; PNG frames into a folder; with passes on,
Cycles also writes UV, normal, depth, position and diffuse colour as one multilayer EXR per
frame (``passes/####.exr``) for the neural renderer and RGB-D datasets."""

from __future__ import annotations

import os
import time

import bpy

from . import live

ENGINE_IDS = {"eevee": "BLENDER_EEVEE", "cycles": "CYCLES", "workbench": "BLENDER_WORKBENCH"}


SOFTWARE_GL = ("llvmpipe", "softpipe", "swiftshader", "software rasterizer")


def fast_engine(gl_renderer: str) -> str:
    """The faster engine for this computer: on a software OpenGL (Mesa's llvmpipe) Eevee took
    ~25 s for its first frame and ~6 s after, Cycles on the CPU 1-2 s at 256² with adaptive
    sampling and denoising; with a GPU, Eevee."""
    return "CYCLES" if any(s in gl_renderer.lower() for s in SOFTWARE_GL) else "BLENDER_EEVEE"


def gl_renderer() -> str:
    """The OpenGL renderer's name ('' when there is no GPU context, e.g. --background)."""
    try:
        import gpu

        return gpu.platform.renderer_get() or ""
    except Exception:  # noqa: BLE001 - no GPU module/context
        return ""


def engine_id(name: str) -> str:
    """Engine id for this Blender ('BLENDER_EEVEE' was 'BLENDER_EEVEE_NEXT' in 4.2-4.5)."""
    eid = ENGINE_IDS.get(name.lower(), name)
    items = bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items.keys()
    if eid == "BLENDER_EEVEE" and eid not in items and "BLENDER_EEVEE_NEXT" in items:
        return "BLENDER_EEVEE_NEXT"
    return eid


# Render Frames' samples when none are given: the scene's own (Cycles 4096, no adaptive
# stop, no denoiser when configured by hand) took 106 s for one 256² frame; these ~5 s.
DEFAULT_SAMPLES = {"CYCLES": 64, "EEVEE": 32}
ADAPTIVE_THRESHOLD = 0.03  # Cycles' noise level at which a pixel stops sampling


def has_oidn() -> bool:
    """Cycles was built with OpenImageDenoise (Debian's Blender 3.4 was not)."""
    try:
        import _cycles

        return bool(getattr(_cycles, "with_openimagedenoise", False))
    except ImportError:
        return False


def configure(scene, engine: str = "eevee", samples: int | None = None, passes: bool = False,
              denoise: bool = True) -> None:
    """Engine, samples (None: ``DEFAULT_SAMPLES``), Cycles adaptive sampling and the
    OpenImageDenoise denoiser (when this Blender has it), and the passes."""
    scene.render.engine = engine_id(engine)
    eid = scene.render.engine
    if eid.startswith("BLENDER_EEVEE"):
        scene.eevee.taa_render_samples = max(1, samples or DEFAULT_SAMPLES["EEVEE"])
    elif eid == "CYCLES":
        scene.cycles.device = "CPU"
        scene.cycles.samples = max(1, samples or DEFAULT_SAMPLES["CYCLES"])
        scene.cycles.use_adaptive_sampling = True
        scene.cycles.adaptive_threshold = ADAPTIVE_THRESHOLD
        scene.cycles.use_denoising = denoise and has_oidn()
        if scene.cycles.use_denoising:
            scene.cycles.denoiser = "OPENIMAGEDENOISE"
    else:
        shading = scene.display.shading
        shading.light = "STUDIO"
        shading.color_type = "TEXTURE"
    vl = scene.view_layers[0]
    want = passes and eid == "CYCLES"
    vl.use_pass_uv = vl.use_pass_normal = vl.use_pass_z = want
    vl.use_pass_diffuse_color = vl.use_pass_position = want
    scene.render.film_transparent = False


def clear_view(context, face, cam) -> list[str]:
    """Hide (viewport and render, reversible) every other object whose bounds hold the camera
    or cross the line of sight to the face, such as the default scene's 2 m cube around a
    camera 1 m from the face; never the face's own parts (the head around it). Returns their names."""
    from mathutils import Vector

    eye = cam.matrix_world.translation
    target = face.matrix_world @ (sum((Vector(c) for c in face.bound_box), Vector()) / 8.0)
    hidden, own = [], {face, cam, *face.children_recursive}
    for o in context.view_layer.objects:
        if o in own:
            continue
        if o.type not in {"MESH", "CURVE", "SURFACE", "META", "FONT", "VOLUME"}:
            continue
        if not o.visible_get():
            continue
        inv = o.matrix_world.inverted_safe()
        a, b = inv @ eye, inv @ target  # the segment in the object's frame, against its local box
        lo = [min(c[i] for c in o.bound_box) for i in range(3)]
        hi = [max(c[i] for c in o.bound_box) for i in range(3)]
        t0, t1 = 0.0, 1.0
        for i in range(3):
            d = b[i] - a[i]
            if abs(d) < 1e-12:
                if not lo[i] <= a[i] <= hi[i]:
                    t0, t1 = 1.0, 0.0
                    break
                continue
            ta, tb = sorted(((lo[i] - a[i]) / d, (hi[i] - a[i]) / d))
            t0, t1 = max(t0, ta), min(t1, tb)
        if t0 <= t1:
            o.hide_render = True
            o.hide_set(True)
            hidden.append(o.name)
    return hidden


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


PARTIAL = ".partial"  # an image being written; renamed to its name once complete


def render_steps(context, out_dir: str, frames=None, passes: bool = False, detail_maps=None):
    """Step generator (``jobs``): one frame per step, so the UI shows progress and Esc stops
    between frames. Writes ``out_dir/frames/####.png`` (and ``out_dir/passes/####.exr``),
    each under a temporary name first, so a stopped render leaves no half-written image.
    ``detail_maps``: {face name: (T,S,S) metres, one per frame} set on each face's detail
    image before its frame renders (the background render gets them from the add-on);
    otherwise live faces get their own map of each frame from the live updater.
    Returns {"frames": paths, "passes": paths, "s_per_frame"}."""
    from .adapters import displacement
    from .jobs import Background

    scene = context.scene
    frames = list(frames or range(scene.frame_start, scene.frame_end + 1))
    with_passes = passes and scene.render.engine == "CYCLES"
    fdir, pdir = os.path.join(out_dir, "frames"), os.path.join(out_dir, "passes")
    os.makedirs(fdir, exist_ok=True)
    if with_passes:
        os.makedirs(pdir, exist_ok=True)
    out = {"frames": [], "passes": []}
    keep, times = scene.frame_current, []
    try:
        for i, f in enumerate(frames):
            yield (f"frame {f} ({i + 1}/{len(frames)})", i / len(frames))
            t0 = time.perf_counter()
            scene.frame_set(f)
            for name, maps in (detail_maps or {}).items():
                displacement.set_pixels(displacement.image(bpy.data.objects[name]), maps[i])
            if live.busy():  # the frame's own (unbaked) detail map, predicted in a worker
                yield Background(f"details of frame {f}", live.wait_all, i / len(frames))
            live.apply_ready()
            bpy.ops.render.render(write_still=False)
            img = bpy.data.images["Render Result"]
            out["frames"].append(_save_whole(img, scene, os.path.join(fdir, f"{f:04d}.png"), "PNG"))
            if with_passes:
                out["passes"].append(_save_whole(img, scene, os.path.join(pdir, f"{f:04d}.exr"), "EXR"))
            times.append(time.perf_counter() - t0)
    finally:
        scene.frame_set(keep)
    out["s_per_frame"] = sum(times) / max(len(times), 1)
    return out


def _save_whole(img, scene, path: str, fmt: str) -> str:
    save_image(img, scene, path + PARTIAL, fmt)
    os.replace(path + PARTIAL, path)  # atomic: the name appears only once the file is complete
    return path


def remove_partials(out_dir: str) -> int:
    """Remove images left half-written by a render that was stopped mid-write."""
    n = 0
    for sub in ("frames", "passes"):
        folder = os.path.join(out_dir, sub)
        for name in os.listdir(folder) if os.path.isdir(folder) else ():
            if name.endswith(PARTIAL):
                os.remove(os.path.join(folder, name))
                n += 1
    return n


def render_frames(context, out_dir: str, frames=None, passes: bool = False, progress=None) -> dict:
    """``render_steps`` here and now (batch jobs); same result."""
    from . import jobs

    return jobs.run_steps("Render", render_steps(context, out_dir, frames, passes), progress)

"""An artist's session in a stock Blender (run by test_bl_stock.py in a Python that has only
bpy: no torch, no backend): install the built zip with Blender's extension installer, point
the preferences at a backend Python, then in the default scene Import Photo -> AU change ->
save -> AU change (applied) -> Bake -> Render (not black) -> Export FBX. Prints one line
``STOCK {json}`` with each step's seconds and what it checked.

    python stock_session.py ZIP BACKEND_PYTHON PHOTO WORKDIR
"""

import json
import os
import sys
import time

import bpy
import numpy as np

ZIP, BACKEND_PY, PHOTO, WORK = sys.argv[-4:]
MOD = "bl_ext.user_default.facedet3d"
out = {"blender": bpy.app.version_string, "steps": {}}


def step(name):
    class _T:
        def __enter__(self):
            self.t0 = time.perf_counter()

        def __exit__(self, *exc):
            out["steps"][name] = round(time.perf_counter() - self.t0, 2)
            print(f"[stock] {name}: {out['steps'][name]} s", flush=True)

    return _T()


def detail_pixels(obj):
    img = obj.modifiers["FaceDet3D Detail"].texture.image
    buf = np.empty(img.size[0] * img.size[1] * 4, np.float32)
    img.pixels.foreach_get(buf)
    return buf[::4].copy()


assert "facedet3d" not in sys.modules and "torch" not in sys.modules
import importlib.util  # noqa: E402

out["torch_importable"] = importlib.util.find_spec("torch") is not None
with step("install zip"):
    bpy.ops.extensions.package_install_files(filepath=ZIP, repo="user_default", enable_on_install=True)
    prefs = bpy.context.preferences.addons[MOD].preferences
    prefs.backend_mode, prefs.python_path = "PYTHON", BACKEND_PY
live = sys.modules[f"{MOD}.live"]
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(WORK, "shot.blend"))  # the default scene, saved
with step("import photo (server start + fit)"):
    assert bpy.ops.facedet3d.import_photo(filepath=PHOTO) == {"FINISHED"}
obj = bpy.context.active_object
scene = bpy.context.scene
out["mode"] = sys.modules[f"{MOD}.client"].current().mode
out["cube_hidden"] = bool(bpy.data.objects["Cube"].hide_render) if "Cube" in bpy.data.objects else None
out["frame_range"] = [scene.frame_start, scene.frame_end]
p0 = detail_pixels(obj)
with step("AU change"):
    obj.facedet3d.au12 = 0.9
    live.flush()
p1 = detail_pixels(obj)
with step("save"):
    bpy.ops.wm.save_mainfile()
with step("AU change after save"):
    obj.facedet3d.au04 = 0.8
    live.flush()
p2 = detail_pixels(obj)
out["detail_changed"] = [float(np.abs(p1 - p0).max()), float(np.abs(p2 - p1).max())]
scene.frame_start, scene.frame_end = 1, 4
obj.keyframe_insert("facedet3d.au12", frame=1)
obj.facedet3d.au12 = 0.0
obj.keyframe_insert("facedet3d.au12", frame=4)
with step("bake 4 frames"):
    assert bpy.ops.facedet3d.bake_details() == {"FINISHED"}
out["baked"] = sorted(os.listdir(bpy.path.abspath(obj.facedet3d.baked_dir)))
scene.facedet3d.engine = "CYCLES"
scene.render.resolution_x = scene.render.resolution_y = 96
scene.frame_end = 1
with step("render 1 frame (Cycles 96², default samples)"):
    assert bpy.ops.facedet3d.render() == {"FINISHED"}
png = os.path.join(WORK, "facedet3d_render", "frames", "0001.png")
img = bpy.data.images.load(png)
px = np.empty(img.size[0] * img.size[1] * 4, np.float32)
img.pixels.foreach_get(px)
rgb = px.reshape(img.size[1], img.size[0], 4)[..., :3]
out["render"] = {"mean": float(rgb.mean()), "std": float(rgb.std()), "centre": float(rgb[32:64, 32:64].mean())}
scene.frame_end = 4
with step("export FBX (4 frames)"):
    assert bpy.ops.facedet3d.export() == {"FINISHED"}
out["fbx_bytes"] = os.path.getsize(os.path.join(WORK, "face.fbx"))
# what Render Frames and Export Face run in a window: a background Blender on a saved copy
# (here this bpy-only Python with the installed extension's offload_child.py), ticked as the
# UI's timer ticks it; "block_s" is the longest tick
offload, jobs = (importlib.import_module(f"{MOD}.{n}") for n in ("offload", "jobs"))


def ticked(name, steps):
    task, worst = jobs.Task(name, steps).start(), 0.0
    with step(name):
        while not task.finished:
            t0 = time.perf_counter()
            task.tick(0.02)
            worst = max(worst, time.perf_counter() - t0)
            time.sleep(0.01)
    assert task.state == "done", (name, task.error)
    out.setdefault("offload", {})[name] = {"block_s": round(worst, 3)}
    return task.result


factory = sys.modules[f"{MOD}.preferences"].client_factory(bpy.context)
res = ticked("render 1 frame in a background Blender",
             lambda t: offload.render_steps(bpy.context, os.path.join(WORK, "bg"), t, factory, frames=[1]))
bg = bpy.data.images.load(res["frames"][0])
px2 = np.empty(bg.size[0] * bg.size[1] * 4, np.float32)
bg.pixels.foreach_get(px2)
out["offload"]["render_same"] = bool(np.abs(px2 - px).mean() < 0.01) and tuple(bg.size) == (96, 96)
fbx = ticked("export FBX in a background Blender",
             lambda t: offload.export_steps(bpy.context, obj, os.path.join(WORK, "bg", "face.fbx"), t))
out["offload"]["fbx_bytes"] = os.path.getsize(fbx)
if os.environ.get("STOCK_BATCH"):  # the headless batch from the installed extension, backend from the preferences
    import runpy

    batch = os.path.join(os.path.dirname(sys.modules[MOD].__file__), "batch.py")
    sys.argv = [batch, "--", PHOTO, "--frames", "2", "--engine", "cycles", "--resolution", "64", "--samples", "4",
                "-o", os.path.join(WORK, "batch")]
    with step("headless batch from the extension (2 frames)"):
        out["batch_rc"] = runpy.run_path(batch, run_name="facedet3d_batch")["main"]()
    out["batch_frames"] = sorted(os.listdir(os.path.join(WORK, "batch", "frames")))
sys.modules[f"{MOD}.client"].shutdown()
print("STOCK " + json.dumps(out), flush=True)
# The bpy 4.2 module crashes in interpreter teardown once any property with an update
# callback was registered (even after unregistering it; a plain Blender exits cleanly):
# leave without the teardown.
sys.stderr.flush()
os._exit(0)

"""The issue's table, measured: a stock Blender (bpy only) with the installed zip and a server
backend, each step driven the way the UI's timer drives it (``Task.tick`` every 10 ms), with
the step's wall time and the longest single tick (how long the UI was blocked at once).

    python stock_measure.py ZIP BACKEND_PYTHON PHOTO WORKDIR   (prints MEASURE {json})
"""

import importlib
import json
import os
import sys
import time

import bpy
import numpy as np

ZIP, BACKEND_PY, PHOTO, WORK = sys.argv[-4:]
MOD = "bl_ext.user_default.facedet3d"
rows = {}


def pixels(img):
    buf = np.empty(img.size[0] * img.size[1] * 4, np.float32)
    img.pixels.foreach_get(buf)
    return buf


def ticked(name, task):
    t0, worst, at = time.perf_counter(), 0.0, ""
    while not task.finished:
        t1, before = time.perf_counter(), task.message
        task.tick(0.02)
        if time.perf_counter() - t1 > worst:
            worst, at = time.perf_counter() - t1, f"{before} -> {task.message}"  # the step that blocked
        time.sleep(0.01)
    assert task.state == "done", (name, task.error)
    rows[name] = {"s": round(time.perf_counter() - t0, 2), "max_block_ms": round(1000 * worst), "max_block_at": at}
    print(f"[measure] {name}: {rows[name]}", flush=True)
    return task.result


bpy.ops.extensions.package_install_files(filepath=ZIP, repo="user_default", enable_on_install=True)
prefs = bpy.context.preferences.addons[MOD].preferences
prefs.backend_mode, prefs.python_path = "PYTHON", BACKEND_PY
m = {n: sys.modules[f"{MOD}.{n}"] for n in ("jobs", "live", "operators", "preferences")}
for n in ("bake", "render", "export"):
    __import__(f"{MOD}.{n}")
    m[n] = sys.modules[f"{MOD}.{n}"]
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(WORK, "shot.blend"))
ctx, Task = bpy.context, m["jobs"].Task
factory = m["preferences"].client_factory(ctx)
asset = m["preferences"].resolve("//facedet3d_assets/photo", ctx)
ticked("import photo (server start, fit, build)",
       Task("Import", lambda t: m["operators"].import_steps(PHOTO, PHOTO, asset, 1024, factory, t)))
obj, scene = ctx.active_object, ctx.scene
for name in ("AU change -> detail applied", "AU change after save -> applied"):
    if "after save" in name:
        bpy.ops.wm.save_mainfile()
    img = obj.modifiers["FaceDet3D Detail"].texture.image
    before = pixels(img)
    t0 = time.perf_counter()
    obj.facedet3d.au12 = 0.3 if "after" not in name else 0.9
    set_ms = 1000 * (time.perf_counter() - t0)
    m["live"].flush()
    rows[name] = {"s": round(time.perf_counter() - t0, 2), "max_block_ms": round(set_ms),
                  "applied": bool(np.abs(pixels(img) - before).max() > 1e-7)}
    print(f"[measure] {name}: {rows[name]}", flush=True)
scene.frame_start, scene.frame_end = 1, 250
obj.facedet3d.au12 = 0.0
obj.keyframe_insert("facedet3d.au12", frame=1)
obj.facedet3d.au12 = 1.0
obj.keyframe_insert("facedet3d.au12", frame=250)
folder = m["preferences"].resolve("//details", ctx)
ticked("bake 250 frames", Task("Bake", lambda t: m["bake"].bake_steps(ctx, obj, factory, folder, task=t)))
m["render"].configure(scene, "cycles")
scene.render.resolution_x = scene.render.resolution_y = 256
ticked("render 1 frame, Cycles 256², default samples",
       Task("Render", m["render"].render_steps(ctx, os.path.join(WORK, "render"), frames=[125])))
ticked("export FBX, 250 frames", Task("Export", m["export"].export_steps(ctx, obj, os.path.join(WORK, "face.fbx"))))
# the same two in a background Blender, as Render Frames and Export Face run them in a window
off = importlib.import_module(f"{MOD}.offload")
ticked("render 1 frame, Cycles 256², in a background Blender",
       Task("Render", lambda t: off.render_steps(ctx, os.path.join(WORK, "render_bg"), t, factory, frames=[125])))
ticked("export FBX, 250 frames, in a background Blender",
       Task("Export", lambda t: off.export_steps(ctx, obj, os.path.join(WORK, "bg", "face.fbx"), t)))
sys.modules[f"{MOD}.client"].shutdown()
print("MEASURE " + json.dumps({"blender": bpy.app.version_string, "rows": rows}), flush=True)
sys.stderr.flush()
os._exit(0)  # the bpy 4.2 module crashes in teardown (see stock_session.py)

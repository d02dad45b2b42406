"""Blender side of ``facedet3d dataset --renderer cycles|eevee``: one subject's synthesized
targets rendered from a spec file, in a Blender process (the backend never imports bpy).

    python addon/dataset_render.py -- SPEC.npz OUTDIR --engine cycles|eevee [--samples N]
    blender --background --factory-startup --python addon/dataset_render.py -- SPEC.npz OUTDIR ...

SPEC.npz (written by ``facedet3d.dataset.blender``): ``faces`` (F, 3) int32, ``uv`` (N, 2)
float32, ``texture`` (S, S, 3) uint8 sRGB (row 0 = top), ``size`` [W, H] output pixels,
``s_px_per_m`` (output pixels per metre), ``distance_m`` (camera to the head model's origin),
``n_targets``, and per target i ``verts_i`` (N, 3) float32 metres in the dataset's camera
frame (x right, y up, z toward the camera; the model origin at z = 0) and ``detail_i``
(S', S') float32 metres along the normal (DetP's wrinkles, row 0 = top of UV space).

The scene is the add-on's (``adapters``: mesh, photo-texture material with the detail bump,
Displace modifier; ``build.key_light`` and ``ensure_world``), seen by an orthographic camera that reproduces the dataset's output frame exactly: pixel (i, j)
centre at camera-frame x = i / s, y = -j / s, looking down -z from z = distance_m, so
Blender's Depth pass is the dataset's depth (metres from the camera plane). Every sample
is taken at the pixel centre (pixel filter 0.01 px), so RGB, depth, normals and coverage
describe the same point, as the software raster's maps do.

Writes OUTDIR/target_i.png (RGB, 8-bit sRGB, "Standard" view transform, black off the face)
and OUTDIR/target_i.exr (multilayer: Combined RGBA, Depth, Normal in Blender world axes),
then OUTDIR/done.json with the seconds per target and the process's CPU seconds. Errors: one line on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PIXEL_FILTER_PX = 0.01  # samples at the pixel centre (RGB / depth / normals / mask agree)


def parse(argv):
    ap = argparse.ArgumentParser(prog="dataset_render.py", description=__doc__.splitlines()[0])
    ap.add_argument("spec")
    ap.add_argument("out")
    ap.add_argument("--engine", choices=("cycles", "eevee"), required=True)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="render threads (0 = one per core)")
    return ap.parse_args(argv)


def build_scene(spec, engine: str, samples: int, threads: int = 0):
    """The face object, its camera, lights and render settings; returns (scene, obj)."""
    import bpy
    import numpy as np
    from mathutils import Matrix

    from facedet3d_addon import build, render  # noqa: PLC0415
    from facedet3d_addon.adapters import MODEL_TO_BLENDER, displacement, material, mesh as mesh_ad  # noqa: PLC0415

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    W, H = (int(v) for v in spec["size"])
    s, z0 = float(spec["s_px_per_m"]), float(spec["distance_m"])
    me = mesh_ad.build_mesh("FaceDet3D dataset face", spec["verts_0"], spec["faces"], spec["uv"])
    obj = bpy.data.objects.new("FaceDet3D dataset face", me)
    scene.collection.objects.link(obj)
    tex = material.new_texture_image("FaceDet3D dataset texture", spec["texture"])
    det = displacement.new_detail_image("FaceDet3D dataset detail", spec["detail_0"])
    me.materials.append(material.build_material("FaceDet3D dataset", tex, det, 1.0))
    # Displaced at the mesh's own vertices (BFM edges ~1-2 mm, about an output pixel at
    # 128-512 px per face); one simple subdivision level under it cost 13 s instead of
    # 0.7 s per 128² Cycles frame here, for sub-pixel relief. The bump adds the rest to
    # the shading and the Normal pass.
    displacement.add_modifier(obj, det, 1.0)
    cam_data = bpy.data.cameras.new("FaceDet3D dataset camera")
    cam_data.type = "ORTHO"
    cam_data.ortho_scale = max(W, H) / s  # metres across the longer side
    cam_data.sensor_fit = "AUTO"
    cam_data.clip_start, cam_data.clip_end = 0.01, z0 + 2.0
    cam = bpy.data.objects.new("FaceDet3D dataset camera", cam_data)
    m = np.eye(4)
    m[:3, :3] = MODEL_TO_BLENDER  # camera axes = the dataset's camera frame
    m[:3, 3] = MODEL_TO_BLENDER @ np.array([(W - 1) / 2.0 / s, -(H - 1) / 2.0 / s, z0])
    cam.matrix_world = Matrix(m.tolist())
    scene.collection.objects.link(cam)
    scene.camera = cam
    scene.collection.objects.link(build.key_light("FaceDet3D dataset key", cam))
    build.ensure_world(scene)
    scene.view_settings.view_transform = "Standard"  # the photo texture shows as photographed
    r = scene.render
    r.resolution_x, r.resolution_y, r.resolution_percentage = W, H, 100
    if threads:  # several Blender processes share the cores (the dataset job's render slots)
        r.threads_mode, r.threads = "FIXED", int(threads)
    render.configure(scene, engine, samples)
    r.film_transparent = True  # coverage in alpha: the mask
    r.filter_size = PIXEL_FILTER_PX  # Eevee's pixel filter
    if engine == "cycles":
        scene.cycles.filter_width = PIXEL_FILTER_PX
        scene.cycles.pixel_filter_type = "BOX"
    vl = scene.view_layers[0]
    vl.use_pass_z = vl.use_pass_normal = True
    return scene, obj


def set_target(obj, spec, i: int) -> None:
    import numpy as np

    from facedet3d_addon.adapters import displacement, to_blender  # noqa: PLC0415

    me = obj.data
    me.vertices.foreach_set("co", to_blender(spec[f"verts_{i}"]).reshape(-1).astype(np.float32))
    me.update()
    displacement.set_pixels(displacement.image(obj), spec[f"detail_{i}"])


def run(args) -> int:
    import bpy
    import numpy as np

    sys.path.insert(0, HERE)
    from batch import load_addon  # noqa: PLC0415

    load_addon()  # the package, not registered: only its adapters are used
    from facedet3d_addon import render  # noqa: PLC0415

    with np.load(args.spec, allow_pickle=False) as z:
        spec = {k: z[k] for k in z.files}
    os.makedirs(args.out, exist_ok=True)
    t0 = time.perf_counter()
    scene, obj = build_scene(spec, args.engine, args.samples, args.threads)
    setup_s = time.perf_counter() - t0
    times = []
    for i in range(int(spec["n_targets"])):
        t = time.perf_counter()
        if i:
            set_target(obj, spec, i)
        bpy.ops.render.render(write_still=False)
        img = bpy.data.images["Render Result"]
        render.save_image(img, scene, os.path.join(args.out, f"target_{i}.png"), "PNG")
        render.save_image(img, scene, os.path.join(args.out, f"target_{i}.exr"), "EXR")
        times.append(time.perf_counter() - t)
    done = {"engine": scene.render.engine, "blender": bpy.app.version_string, "setup_s": round(setup_s, 3),
            "render_s": [round(t, 3) for t in times],
            "cpu_s": round(time.process_time(), 3)}  # this whole process, start-up included
    with open(os.path.join(args.out, "done.json.tmp"), "w", encoding="utf-8") as fh:
        json.dump(done, fh)
    os.replace(os.path.join(args.out, "done.json.tmp"), os.path.join(args.out, "done.json"))
    return 0


def main() -> int:
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    args = parse(argv)
    try:
        return run(args)
    except Exception as exc:  # noqa: BLE001 - one line for the backend's manifest row
        if os.environ.get("FACEDET3D_DEBUG"):
            raise
        print(f"dataset_render: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # the bpy module can crash in interpreter teardown (batch.py's _exit); the outputs are written
    os._exit(code)

"""Headless main job: photo -> animated expression frames, scene.blend (and face.fbx).

    python addon/batch.py -- PHOTO [--preset happy | --au 12=0.8 ...] --frames N
        --engine eevee|cycles|workbench --resolution PX [--passes] [--fbx] [--neural] -o OUTDIR
    blender --background --factory-startup --python addon/batch.py -- PHOTO ...

(``facedet3d render`` starts it.) Steps: fit (a bad photo stops here, before anything is
written), build the face, animate the AUs from the photo's expression (or neutral) to the
target over N frames, bake the details, render PNG frames (with --neural also the neural
pass's frames, neural/ and neural_proxy/), save OUTDIR/scene.blend, with --fbx
OUTDIR/face.fbx. Progress lines start with "[facedet3d]". ``--bench PHOTO`` prints
the add-on's speed figures as one JSON line instead.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


_SUBMODULES = ("jobs", "client", "live", "properties", "preferences", "adapters", "adapters.animation", "adapters.displacement",
               "adapters.camera", "build", "bake", "render", "export", "neural", "bench")


def installed_package():
    """The add-on as Blender enabled it (``bl_ext.<repo>.facedet3d``) when this batch.py is
    the installed extension's own copy, else None."""
    for name, m in list(sys.modules.items()):
        f = getattr(m, "__file__", None) or ""
        if name != "facedet3d_addon" and "." in name and os.path.basename(f) == "__init__.py" \
                and os.path.dirname(os.path.abspath(f)) == HERE:
            return m
    return None


def load_addon():
    """The add-on package, loaded from this folder (works inside and outside Blender); when
    Blender already enabled this folder as an extension, that package, aliased as
    ``facedet3d_addon`` (so it is not registered twice)."""
    name = "facedet3d_addon"
    pkg = installed_package() if name not in sys.modules else None
    if pkg is not None:
        for sub in _SUBMODULES:
            importlib.import_module(f"{pkg.__name__}.{sub}")
        for full, m in list(sys.modules.items()):
            if full == pkg.__name__ or full.startswith(pkg.__name__ + "."):
                sys.modules[name + full[len(pkg.__name__):]] = m
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, "__init__.py"),
                                                      submodule_search_locations=[HERE])
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def parse(argv):
    ap = argparse.ArgumentParser(prog="batch.py", description=__doc__.splitlines()[0])
    ap.add_argument("photo")
    ap.add_argument("-o", "--out")
    ap.add_argument("--preset")
    ap.add_argument("--au", action="append", default=[])
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--engine", default="eevee", choices=("eevee", "cycles", "workbench"))
    ap.add_argument("--resolution", type=int, default=512)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--detail-size", type=int, default=256, choices=(256, 1024, 4096))
    ap.add_argument("--age", type=float, default=0.0)
    ap.add_argument("--from-neutral", action="store_true")
    ap.add_argument("--passes", action="store_true")
    ap.add_argument("--no-details", action="store_true", help="render with Displace and bump off")
    ap.add_argument("--cavity", type=float, default=1.0,
                    help="texture darkening by the detail's change from the photo's (1 = default, 0 = bump only)")
    ap.add_argument("--light", default="key", choices=("key", "front"),
                    help="the sun added with the face: key (grazing, shows relief) or front (as a front-lit photo)")
    ap.add_argument("--fbx", action="store_true")
    ap.add_argument("--gltf", action="store_true")
    ap.add_argument("--neural", action="store_true", help="also neural frames (fits the neural pass first)")
    ap.add_argument("--neural-steps", type=int, default=0, help="neural pass fit steps (0 = default)")
    ap.add_argument("--framing", choices=("face", "photo"), default="face",
                    help="face: the photo's view cropped to the face, square; photo: the whole photo")
    ap.add_argument("--drive", help="video, Live Link Face CSV or track JSON the face performs (--frames 0 = all)")
    ap.add_argument("--folds", help="a video of the photo's person: learn their own folds from it before baking")
    ap.add_argument("--bench", action="store_true", help="print speed figures as JSON (PHOTO only)")
    ap.add_argument("--backend-python", metavar="PATH",
                    help="start the backend server with this Python (before $FACEDET3D_BACKEND_PYTHON, "
                         "--backend-address and the add-on preferences)")
    ap.add_argument("--backend-address", metavar="HOST:PORT", help="a running 'facedet3d serve' on this computer")
    ap.add_argument("--backend-token", metavar="TOKEN", help="the token that server printed")
    args = ap.parse_args(argv)
    if not args.bench and not args.out:
        ap.error("-o OUTDIR is required")
    if bool(args.backend_address) != bool(args.backend_token):
        ap.error("--backend-address HOST:PORT and --backend-token TOKEN go together")
    return args


def say(msg: str) -> None:
    print(f"[facedet3d] {msg}", flush=True)


def target_aus(args):
    """((17,) AUs, (left, right) sides) of --preset and --au, parsed and checked by the
    backend's one vocabulary (out-of-range values clamped with a warning)."""
    from facedet3d_addon._api.expressions import target_aus as parse_target  # noqa: PLC0415

    return parse_target(args.au, args.preset)


def learn_folds(client, client_mod, asset_dir: str, video: str, say) -> None:
    """The person's own folds from ``video`` into the fitted asset (the sidebar's Learn Folds from
    Video, as a backend job), before anything is baked: every detail map then includes them."""
    from facedet3d_addon import folds  # noqa: PLC0415

    call = client_mod.T.FoldsCall(asset_dir=asset_dir, video=os.path.abspath(video))
    st = folds.learn(client, call, lambda msg, frac: say(msg), lambda: False)
    say(f"folds learnt from {st.source}: {st.frames} frames, AUs {list(st.active_aus)}, "
        f"first half -> second half r = {st.split_check_r}")


def drive(ctx, obj, args, client) -> None:
    """--drive: track the performance (a track job of the backend ``client``), one scene
    frame per video frame at the video's rate, key the face (``animate``)."""
    from facedet3d_addon import animate, live  # noqa: PLC0415

    scene = ctx.scene
    say(f"tracking {args.drive}")
    track = animate.track_work(os.path.abspath(args.drive), client, frames=args.frames)(say, lambda: False)
    fps = float(track["fps"])
    scene.render.fps, scene.render.fps_base = max(1, round(fps)), max(1, round(fps)) / fps
    with live.quiet():
        info = animate.apply_track(ctx, obj, track, start=1.0, max_frames=args.frames)
    scene.frame_start, scene.frame_end = 1, int(round(info["last"]))
    say(f"driven by {os.path.basename(args.drive)}: {info['keyed_frames']} frames at {fps:g} fps")


def prefs_settings():
    """(mode, python, port, token) from an enabled FaceDet3D add-on's preferences, else None
    (read before the scene is reset; ``--factory-startup`` has none)."""
    import bpy

    for key, addon in bpy.context.preferences.addons.items():
        if key.split(".")[-1] == "facedet3d" and getattr(addon, "preferences", None) is not None:
            p = addon.preferences
            if hasattr(p, "backend_mode"):
                return (p.backend_mode, bpy.path.abspath(p.python_path) if p.python_path else "",
                        p.server_port, p.server_token)
    return None


def backend_client(args, client_mod, prefs=None):
    """--backend-python, $FACEDET3D_BACKEND_PYTHON, --backend-address/--backend-token, in
    that order, then the preferences, then in-process when the backend imports here."""
    py = args.backend_python or os.environ.get("FACEDET3D_BACKEND_PYTHON", "")
    if py:
        say(f"starting the backend server with {py}")
        return client_mod.start_server(py)
    if args.backend_address:
        host, _, port = args.backend_address.rpartition(":")
        client = client_mod.HttpClient(int(port), args.backend_token, host=host or "127.0.0.1")
        client.status()
        return client
    if prefs is not None and (prefs[0] != "AUTO" or prefs[1] or not client_mod.in_process_available()):
        return client_mod.get_client(*prefs)
    if client_mod.in_process_available():
        return client_mod.InProcessClient()
    raise client_mod.BackendUnavailable(
        "no backend: pass --backend-python PATH (a Python with facedet3d installed), set "
        "FACEDET3D_BACKEND_PYTHON, or --backend-address HOST:PORT --backend-token TOKEN")


def run(args) -> int:
    import bpy
    import numpy as np

    prefs = prefs_settings()
    addon = load_addon()
    installed = addon.__name__ != "facedet3d_addon"
    from facedet3d_addon import bake, build, client as client_mod, export, live, render  # noqa: PLC0415
    from facedet3d_addon.adapters import animation, camera  # noqa: PLC0415

    t_start = time.perf_counter()
    backend_s = 0.0
    if installed:  # Blender enabled it: keep it (and its preferences), start from an empty scene
        bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    else:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        addon.register()
    client = None
    try:
        client = backend_client(args, client_mod, prefs)
        client_mod.set_client(client)  # live updates and the operators use this one too
        out = os.path.abspath(args.out)
        status = client.status()
        if status.detail_source != "detp":  # no silent stand-in for the wrinkles the job promises
            raise RuntimeError(status.detail_error or status.message)
        tgt, sides = target_aus(args)
        say(f"fitting {args.photo}")
        t0 = time.perf_counter()
        face = client.fit(client_mod.T.FitCall(photo=os.path.abspath(args.photo), out_dir=os.path.join(out, "asset")))
        backend_s += time.perf_counter() - t0
        say(f"fitted in {time.perf_counter() - t0:.1f} s; photo AUs "
            + ", ".join(f"AU{a}={v:.2f}" for a, v in zip(build.AU_IDS, face.photo_aus) if v > 0.05))
        if args.folds:
            learn_folds(client, client_mod, os.path.join(out, "asset"), args.folds, say)
        ctx = bpy.context
        scene = ctx.scene
        # built with DetP's map at the photo's own AUs, as Import Photo does: it is what the
        # baked frames hold at that expression, and the cavity term's rest (no darkening there)
        rest_req = client_mod.T.DetailRequest(face.subject_id, face.asset_dir, np.asarray(face.photo_aus, np.float32)[None],
                                              float(args.age), int(args.detail_size))
        rest = client.detail(rest_req).maps[0]
        obj, cam = build.build_face(ctx, face, rest, resolution=args.detail_size, render_height=args.resolution,
                                  light=args.light)
        if args.framing == "face":
            camera.frame_face(scene, cam, args.resolution)
        obj.facedet3d.age = args.age
        obj.facedet3d.detail_cavity = args.cavity
        if args.drive:
            drive(ctx, obj, args, client)
        else:
            n = max(1, args.frames)
            scene.frame_start, scene.frame_end = 1, n
            start = np.zeros(17, np.float32) if args.from_neutral else np.asarray(face.photo_aus, np.float32)
            ts = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None]
            ease = ts * ts * (3 - 2 * ts)  # smoothstep in time
            with live.quiet():
                animation.keyframe_aus(obj, np.arange(1, n + 1), start[None] * (1 - ease) + np.asarray(tgt)[None] * ease)
                animation.keyframe_sides(obj, np.arange(1, n + 1), (1 - ease) + np.asarray(sides)[None] * ease)
        say(f"built {obj.name}: {len(obj.data.vertices)} vertices, {len(obj.data.shape_keys.key_blocks) - 1} shape keys")
        t0 = time.perf_counter()
        paths = bake.bake_details(ctx, obj, client, os.path.join(out, "details"), progress=say)
        backend_s += time.perf_counter() - t0
        say(f"baked {len(paths)} detail maps ({status.detail_source})")
        render.configure(scene, args.engine, args.samples, args.passes)
        t_render = time.perf_counter()
        from contextlib import nullcontext  # noqa: PLC0415

        from facedet3d_addon.adapters import displacement  # noqa: PLC0415

        with displacement.details_off(obj) if args.no_details else nullcontext():
            res = render.render_frames(ctx, out, passes=args.passes, progress=say)
        say(f"rendered {len(res['frames'])} frames with {args.engine}: {res['s_per_frame']:.2f} s/frame")
        if args.neural:
            from facedet3d_addon import neural  # noqa: PLC0415

            t0 = time.perf_counter()
            info = neural.fit(client, neural.asset_dir(obj), os.path.abspath(args.photo), args.neural_steps, say)
            backend_s += time.perf_counter() - t0
            say(f"neural pass: input view PSNR {info.psnr_db:.2f} dB, SSIM {info.ssim:.3f} inside the face "
                f"({'fitted in %.0f s' % info.fit_s if info.fit_s else 'reused'}, {info.device})")
            nres = neural.render_frames(ctx, obj, client, out, info=info, progress=say)
            backend_s += nres["backend_ms"] / 1000.0
            say(f"rendered {len(nres['frames'])} neural frames ({info.size}²): {nres['s_per_frame']:.2f} s/frame")
        for img in bpy.data.images:
            if img.source == "GENERATED" and img.name.startswith("FaceDet3D"):
                img.pack()
        bpy.ops.wm.save_as_mainfile(filepath=os.path.join(out, "scene.blend"), relative_remap=True)
        say(f"saved {os.path.join(out, 'scene.blend')}")
        if args.fbx:
            say(f"exported {export.export_face(ctx, obj, os.path.join(out, 'face.fbx'), 'FBX')}")
        if args.gltf:
            say(f"exported {export.export_face(ctx, obj, os.path.join(out, 'face.glb'), 'GLTF')}")
        total = time.perf_counter() - t_start
        say(json.dumps({"total_s": round(total, 2), "backend_s": round(backend_s, 2),
                        "backend_share": round(backend_s / total, 3),
                        "render_s_per_frame": round(res["s_per_frame"], 3),
                        "render_s": round(time.perf_counter() - t_render, 2)}))
    finally:
        client_mod.set_client(None)
        if client is not None:
            client.close()
        if not installed:
            addon.unregister()
    return 0


def main(argv=None) -> int:
    argv = sys.argv[sys.argv.index("--") + 1:] if argv is None and "--" in sys.argv else (argv or [])
    args = parse(argv)
    if args.bench:
        sys.path.insert(0, HERE)
        load_addon()
        from facedet3d_addon import bench  # noqa: PLC0415

        print(json.dumps(bench.bench_ui(args.photo)), flush=True)
        return 0
    if not os.path.isfile(args.photo):
        print(f"facedet3d render: error: {args.photo}: no such file", file=sys.stderr)
        return 2
    try:
        return run(args)
    except Exception as exc:  # noqa: BLE001 - one line, like the CLI
        if os.environ.get("FACEDET3D_DEBUG"):
            raise
        print(f"facedet3d render: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 1


def _exit(code: int) -> None:
    """Exit; the bpy 4.2 *module* crashes in interpreter teardown once a property with an
    update callback was registered (a Blender binary exits cleanly), so skip the teardown."""
    bpy = sys.modules.get("bpy")
    if bpy is not None and not bpy.app.binary_path and bpy.app.version < (4, 3, 0):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    _exit(main())

"""``facedet3d render``: the headless main job, photo -> frames + scene.blend (+ face.fbx).

The backend never imports bpy: this command starts the add-on's ``batch.py`` in another
process — with this interpreter (the bpy module installed beside the backend) by default,
or inside a Blender install with ``--blender PATH`` as
``blender --background --factory-startup --python batch.py -- ARGS --backend-python THIS_PYTHON``
(Blender's own Python has no torch: the add-on starts ``facedet3d serve`` with this
interpreter). The batch job fits
the photo first, so a bad photo stops it before anything is written.

``bench_ui()`` measures the add-on's interactive and render speed the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ENGINES = ("eevee", "cycles", "workbench")


def addon_dir(given: str | None = None) -> Path:
    """The Blender add-on folder holding ``batch.py``: ``--addon DIR``, else
    ``$FACEDET3D_ADDON_DIR`` (``scripts/setup.sh`` exports this checkout's ``addon/``).
    The backend ships no add-on files and never guesses where one is."""
    from facedet3d.errors import FaceDet3DError

    src = given or os.environ.get("FACEDET3D_ADDON_DIR")
    if not src:
        raise FaceDet3DError("no Blender add-on folder given: pass --addon DIR (the folder with batch.py, e.g. an "
                             "installed extension) or set FACEDET3D_ADDON_DIR")
    d = Path(src).expanduser()
    if not (d / "batch.py").is_file():
        raise FaceDet3DError(f"the Blender add-on's batch.py is not in {d}; pass --addon DIR or set FACEDET3D_ADDON_DIR")
    return d


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("render", help="photo -> animated expression frames, scene.blend, FBX (headless Blender)")
    p.add_argument("photo")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--preset", help="emotion preset: happy, sad, surprise, fear, anger, disgust, contempt")
    p.add_argument("--au", action="append", default=[], metavar="N=I", help="target AU intensity 0..1, e.g. --au 12=0.8 (repeatable)")
    p.add_argument("--frames", type=int, default=None,
                   help="frames from the photo's expression to the target (default 24); with --drive the "
                        "first N frames of the performance (default all)")
    p.add_argument("--drive", metavar="VIDEO|CAPTURE.csv|TRACK.json",
                   help="the face performs this video (tracked by `facedet3d track`), Live Link Face capture or track")
    p.add_argument("--folds", metavar="VIDEO",
                   help="a video of the photo's person: learn their own folds from it (facedet3d folds) "
                        "before the details are baked")
    p.add_argument("--engine", choices=ENGINES, default="eevee")
    p.add_argument("--resolution", type=int, default=512,
                   help="output side in pixels (--framing face: square; photo: the height, width follows the photo)")
    p.add_argument("--framing", choices=("face", "photo"), default="face",
                   help="face (default): the photo's view cropped to the face; photo: the whole photo's frame")
    p.add_argument("--samples", type=int, default=16, help="render samples (Eevee/Cycles)")
    p.add_argument("--detail-size", type=int, choices=(256, 1024, 4096), default=256)
    p.add_argument("--age", type=float, default=0.0, help="subject age in years (0 = unknown)")
    p.add_argument("--from-neutral", action="store_true", help="start from neutral instead of the photo's expression")
    p.add_argument("--passes", action="store_true", help="Cycles: also write UV/normal/depth/diffuse multilayer EXR")
    p.add_argument("--no-details", action="store_true",
                   help="render without the detail map (Displace and bump off; still baked): the "
                        "details-off half of an on/off comparison")
    p.add_argument("--cavity", type=float, default=1.0,
                   help="how much the texture darkens where the detail goes deeper than the photo's own "
                        "(1 = the photo's own scale, the default; 0 = bump and displacement only)")
    p.add_argument("--light", choices=("key", "front"), default="key",
                   help="the sun: key (55 degrees above the view, grazing: shows relief) or front (from the camera, "
                        "as a front-lit photo or video: compare with real frames)")
    p.add_argument("--fbx", action="store_true", help="also export OUTDIR/face.fbx")
    p.add_argument("--gltf", action="store_true", help="also export OUTDIR/face.glb")
    p.add_argument("--neural", action="store_true",
                   help="also render each frame through the neural pass (OUTDIR/neural/, neural_proxy/ without "
                        "details); fits it to the photo first (minutes on a CPU)")
    p.add_argument("--neural-steps", type=int, default=0, help="steps of that fit (0 = the default, 400)")
    p.add_argument("--blender", metavar="PATH", help="run inside this Blender binary instead of the bpy module")
    p.add_argument("--addon", metavar="DIR", help="the add-on folder with batch.py (default: $FACEDET3D_ADDON_DIR)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.set_defaults(func=handler)


def batch_argv(args) -> list[str]:
    """The arguments ``batch.py`` takes (after ``--``)."""
    frames = args.frames if args.frames is not None else (0 if getattr(args, "drive", None) else 24)
    out = [str(Path(args.photo).resolve()), "-o", str(Path(args.out).resolve()), "--frames", str(frames),
           "--engine", args.engine, "--resolution", str(args.resolution), "--samples", str(args.samples),
           "--detail-size", str(args.detail_size), "--age", str(args.age), "--framing", args.framing,
           "--neural-steps", str(args.neural_steps)]
    if args.preset:
        out += ["--preset", args.preset]
    for a in args.au:
        out += ["--au", a]
    cavity = getattr(args, "cavity", 1.0)
    if not (cavity >= 0.0 and cavity < float("inf")):
        from facedet3d.errors import FaceDet3DError

        raise FaceDet3DError(f"--cavity must be a finite number >= 0, got {cavity}")
    if cavity != 1.0:
        out += ["--cavity", str(cavity)]
    if getattr(args, "light", "key") != "key":
        out += ["--light", args.light]
    if getattr(args, "drive", None):
        out += ["--drive", str(Path(args.drive).resolve())]
    if getattr(args, "folds", None):
        out += ["--folds", str(Path(args.folds).resolve())]
    for flag in ("passes", "fbx", "gltf", "from_neutral", "neural", "no_details"):
        if getattr(args, flag):
            out.append("--" + flag.replace("_", "-"))
    return out


def command(script: Path, argv: list[str], blender: str | None = None) -> list[str]:
    """A Blender install runs the add-on with its own Python, which has no backend: it is
    told to start the backend server with this interpreter (``--backend-python``)."""
    if blender:
        return [blender, "--background", "--factory-startup", "--python-exit-code", "1",
                "--python", str(script), "--", *argv, "--backend-python", sys.executable]
    return [sys.executable, str(script), "--", *argv]


def _env() -> dict:
    env = dict(os.environ)
    # the batch process imports this package too (in-process backend)
    import facedet3d

    root = str(Path(facedet3d.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def handler(args) -> int:
    from facedet3d.api.expressions import resolve_age, target_aus
    from facedet3d.errors import BadImage, FaceDet3DError

    if not Path(args.photo).is_file():
        raise BadImage(f"{args.photo}: no such file; give the path of a photo (JPEG, PNG, WebP, TIFF)")
    if (args.frames is not None and args.frames < 1) or args.resolution < 16:
        raise FaceDet3DError("--frames must be >= 1 and --resolution >= 16")
    if args.drive and not Path(args.drive).is_file():
        raise FaceDet3DError(f"{args.drive}: no such file; --drive takes a video, a Live Link Face CSV or a track JSON")
    if getattr(args, "folds", None) and not Path(args.folds).is_file():
        raise FaceDet3DError(f"{args.folds}: no such file; --folds takes a video of the photo's person")
    if args.drive and (args.preset or args.au):
        raise FaceDet3DError("--drive replaces --preset/--au: give one or the other")
    try:  # check AUs / preset / age here too, so mistakes cost no Blender start
        target_aus(args.au, args.preset)
        resolve_age(args.age)
    except ValueError as exc:
        raise FaceDet3DError(str(exc)) from None
    cmd = command(addon_dir(args.addon) / "batch.py", batch_argv(args), args.blender)
    try:
        return subprocess.call(cmd, env=_env())
    except FileNotFoundError:
        raise FaceDet3DError(f"cannot start {cmd[0]}; check --blender PATH") from None


def bench_ui(photo: str, timeout_s: float = 900.0, addon: str | None = None) -> dict:
    """Add-on speed, measured in a bpy process (the backend never imports bpy).

    Returns {"ui_update_ms": AU change -> updated detail image pixels (median, CPU),
    "render_s_per_frame_eevee", "render_s_per_frame_cycles": warm frames at 512x512,
    "backend_share": share of a batch render's wall time spent in backend calls, ...}.
    """
    cmd = command(addon_dir(addon) / "batch.py", ["--bench", str(Path(photo).resolve())])
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout_s)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"bench_ui failed (exit {res.returncode}): {tail[0]}")
    return json.loads(lines[-1])

"""``facedet3d neural-fit SUBJECT_DIR`` and ``facedet3d neural-render SUBJECT_DIR -o OUT.png``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facedet3d.errors import FaceDet3DError


class NeuralCliError(FaceDet3DError):
    exit_code = 2


def add_parser(sub) -> None:
    f = sub.add_parser("neural-fit", help="fit the neural render pass to a subject's photo (writes neural.safetensors)")
    f.add_argument("subject", help="FaceAsset folder written by `facedet3d fit`")
    f.add_argument("--photo", help="the photo the asset was fitted on (default: meta.json's photo, beside the folder)")
    f.add_argument("--steps", type=int, help="optimisation steps (default 400)")
    f.add_argument("--size", type=int, help="training resolution, multiple of 16 (default 256; 512 suits CUDA)")
    f.add_argument("--no-augw", action="store_true", help="switch off the Augmented Wrinkle Loss")
    f.add_argument("--no-dsl", action="store_true", help="switch off the Detailed Shading Loss")
    f.add_argument("--config", help="JSON file with NeuralConfig fields (losses: {name: weight})")
    f.add_argument("--device", help="torch device (default: cuda when present, else cpu)")
    f.set_defaults(func=fit_handler)

    r = sub.add_parser("neural-render", help="one neural frame of a fitted subject -> PNG")
    r.add_argument("subject", help="FaceAsset folder with a fitted neural pass")
    r.add_argument("--au", action="append", metavar="N=VALUE", help="AU intensity 0..1, e.g. --au 12=0.8 (repeatable)")
    r.add_argument("--preset", help="emotion preset: happy, sad, surprise, fear, anger, disgust, contempt")
    r.add_argument("--yaw", type=float, default=0.0, help="turn the head by DEG about its vertical axis")
    r.add_argument("--pitch", type=float, default=0.0, help="tilt the head by DEG")
    r.add_argument("--size", type=int, default=256, help="output side in pixels, multiple of 16")
    r.add_argument("--no-details", action="store_true", help="proxy geometry only (detail map 0)")
    r.add_argument("--detail", help="detail map to use (.npy / .exr, metres); default: DetP for the AUs")
    r.add_argument("--cavity", type=float, default=1.0,
                   help="cavity term, as the sidebar's Cavity: the colour darkens by exp(X (detail - rest) / 1 mm); "
                        "0 = bump only (default 1)")
    r.add_argument("--rest", help="with --detail: the map the face was built with (.npy / .exr, metres), the "
                                  "cavity's zero; with DetP it is DetP at the photo's own AUs")
    r.add_argument("-o", "--out", required=True, help="OUT.png")
    r.set_defaults(func=render_handler)


def fit_handler(args: argparse.Namespace) -> int:
    from facedet3d.neural.fit import fit_subject
    from facedet3d.neural.model import META_FILE, NeuralConfig

    cfg = NeuralConfig()
    if args.config:
        try:
            cfg = NeuralConfig.from_dict(json.loads(Path(args.config).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise NeuralCliError(f"--config {args.config}: {exc}") from None
    if args.steps is not None:
        cfg.steps = max(0, args.steps)
    if args.size is not None:
        if args.size < 64 or args.size % 16:
            raise NeuralCliError("--size must be a multiple of 16, at least 64")
        cfg.size, cfg.crop = args.size, min(cfg.crop, args.size) if cfg.crop else 0
    if args.no_augw:
        cfg.losses.augw = 0.0
    if args.no_dsl:
        cfg.losses.dsl = 0.0

    def progress(rec):
        print(f"step {rec['step']:4d}  loss {rec['total']:.4f}  ({rec['s']:.0f} s)", flush=True)

    _, _, report = fit_subject(args.subject, cfg, photo=args.photo, device=args.device, progress=progress)
    m = report["metrics"]["render"]
    print(report["perceptual"])
    print(f"wrote {Path(args.subject) / META_FILE} (input view PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f} inside "
          f"the face; {report['timings_s']['train']:.0f} s on {report['device']})")
    return 0


def _read_detail(path: str) -> np.ndarray:
    import cv2

    p = Path(path)
    if p.suffix.lower() == ".npy":
        d = np.load(p, allow_pickle=False)
    else:
        d = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if d is not None and d.ndim == 3:
            d = d[..., 0]
    if d is None or d.ndim != 2:
        raise NeuralCliError(f"--detail {path}: not a single-channel .npy/.exr map")
    return d.astype(np.float32)


def render_handler(args: argparse.Namespace) -> int:
    from facedet3d.rig.pose import posed_vertices, target_aus
    from facedet3d.neural.geometry import units_from_metres, view_projection
    from facedet3d.neural.render import neural_render
    from facedet3d.neural.scene import read_asset

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise NeuralCliError(f"-o must end in .png, not {out.name!r}")
    if args.size < 64 or args.size % 16:
        raise NeuralCliError("--size must be a multiple of 16, at least 64")
    if not np.isfinite(args.cavity) or args.cavity < 0:
        raise NeuralCliError(f"--cavity must be a finite number >= 0, not {args.cavity}")
    if args.rest and not args.detail:
        raise NeuralCliError("--rest goes with --detail (with DetP the rest is DetP at the photo's AUs)")
    asset = read_asset(args.subject)
    aus, sides = target_aus(args.au, args.preset)
    verts = posed_vertices(asset, aus, sides)
    detail, rest, note = None, None, "no details"
    if args.detail:
        detail, note = _read_detail(args.detail), f"details from {args.detail}"
        rest = _read_detail(args.rest) if args.rest else None
    elif not args.no_details:
        try:
            from facedet3d.detail.infer import shared_predictor

            pred = shared_predictor()
            detail = pred.for_asset(asset, aus, sides=sides)
            rest = pred.for_asset(asset, {int(k): float(v) for k, v in (asset.meta.aus or {}).items()})
            note = "details from DetP"
        except (FaceDet3DError, ImportError, OSError) as exc:  # no quiet stand-in for DetP's map
            raise NeuralCliError(f"the detail network is unavailable ({str(exc).splitlines()[0] if str(exc) else exc!r}); "
                                 "pass --detail FILE or --no-details") from None
    centre = units_from_metres(asset.vertices).mean(0)
    view = view_projection(asset.meta.pose.projection, asset.meta.box, args.size, args.yaw, args.pitch, centre)
    import torch

    from facedet3d.neural.fit import cpu_threads

    torch.set_num_threads(cpu_threads())
    rgb = neural_render(args.subject, verts, detail, view, args.size, rest=rest, cavity=args.cavity)
    if detail is not None:
        note += f", cavity {args.cavity:g}" if rest is not None and args.cavity > 0 else ", no cavity term"
    import cv2

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    if not cv2.imwrite(str(tmp), rgb[..., ::-1]):
        raise NeuralCliError(f"could not write {out}")
    tmp.replace(out)
    print(f"wrote {out} ({note})")
    return 0

"""``facedet3d detail`` (predict a subject's detail map for target AUs) and
``facedet3d detail-onnx`` (build step: export DetP and the SR network to ONNX).

    facedet3d detail SUBJECT_DIR [--au 12=0.8 ...] [--preset happy] [--age 40]
                     [--size 256|1024|4096] -o OUT.{npy,exr,png}

``.npy``/``.exr``: float32 metres along the normal, row 0 = top of UV space (v = 1).
``.png``: a shaded relief for people (``detail_input.shade_preview``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from facedet3d.errors import BadRequest, FaceDet3DError

_EXTS = (".npy", ".exr", ".png")



def add_parser(sub) -> None:
    p = sub.add_parser("detail", help="predict the subject's detail map for target AUs (DetP + SR)")
    p.add_argument("subject", help="FaceAsset folder written by `facedet3d fit`")
    p.add_argument("--au", action="append", default=[], metavar="N=I", help="target AU intensity 0..1, e.g. 12=0.8 (repeatable)")
    p.add_argument("--preset", help="emotion preset: happy, sad, surprise, fear, anger, disgust, contempt")
    p.add_argument("--age", type=float, default=0.0,
                   help="the subject's age in years (0 = unknown, which the network reads as 35)")
    p.add_argument("--size", type=int, choices=(256, 1024, 4096), default=256)
    p.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto")
    p.add_argument("-o", "--out", required=True, help="output .npy, .exr or .png")
    p.set_defaults(func=handler)
    e = sub.add_parser("detail-onnx", help="build step: export the detail networks to ONNX")
    e.add_argument("--out-dir", help="folder (default: the cache, where the onnx backend looks)")
    e.set_defaults(func=handler_onnx)


def write_map(detail: np.ndarray, out: Path) -> None:
    import cv2

    from facedet3d.fit.detail_input import shade_preview

    out.parent.mkdir(parents=True, exist_ok=True)
    ext = out.suffix.lower()
    if ext == ".npy":
        np.save(out, detail.astype(np.float32))
        return
    if ext == ".exr":
        ok = cv2.imwrite(str(out), detail.astype(np.float32), [cv2.IMWRITE_EXR_TYPE, cv2.IMWRITE_EXR_TYPE_FLOAT])
    else:
        texel_m = 2.5e-4 * 1024 / detail.shape[0]
        ok = cv2.imwrite(str(out), shade_preview(detail, texel_m=texel_m)[..., ::-1])
    if not ok:
        raise FaceDet3DError(f"could not write {out}")


def handler(args) -> int:
    from facedet3d.fit import faceasset
    from facedet3d.detail.infer import shared_predictor

    out = Path(args.out)
    if out.suffix.lower() not in _EXTS:
        raise BadRequest(f"output must end in {', '.join(_EXTS)}: {out.name}")
    subj = Path(args.subject)
    if not (subj / "meta.json").is_file():
        raise BadRequest(f"{subj} is not a FaceAsset folder (run `facedet3d fit PHOTO -o {subj}` first)")
    from facedet3d.api.expressions import resolve_age

    try:
        years = resolve_age(args.age)
    except ValueError as exc:
        raise BadRequest(f"--{exc}") from None
    from facedet3d.rig.pose import target_aus  # the one parser with one-line errors

    y, sides = target_aus(args.au, args.preset)
    try:
        asset = faceasset.read(subj)
    except (OSError, ValueError, KeyError) as exc:
        raise BadRequest(f"cannot read FaceAsset {subj}: {exc}") from None
    t0 = time.perf_counter()
    pred = shared_predictor(args.backend)  # warm across calls in one process
    t1 = time.perf_counter()
    d = pred.for_asset(asset, y, age=years, size=args.size, sides=sides)
    t2 = time.perf_counter()
    write_map(d, out)
    print(f"wrote {out} ({args.size}², {pred.backend}; load {1000 * (t1 - t0):.0f} ms, predict {1000 * (t2 - t1):.0f} ms; "
          f"|d| p99 {np.percentile(np.abs(d), 99) * 1e3:.3f} mm)")
    return 0


def handler_onnx(args) -> int:
    from facedet3d.detail.infer import export_onnx

    paths = export_onnx(out_dir=Path(args.out_dir) if args.out_dir else None)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0

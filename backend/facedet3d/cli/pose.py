"""``facedet3d pose SUBJECT_DIR [--au 12=0.8 ...] [--preset happy] -o OUT.{obj,ply,png}``:
the fitted face posed with AUs, as a mesh file or a picture from the photo's viewpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from facedet3d.errors import BadRequest

PICTURE_SIDE = 512  # pixels


def picture(asset, vertices_m: np.ndarray, side: int = PICTURE_SIDE) -> np.ndarray:
    """Clay-shaded | textured render from the photo's camera, side by side, (side, 2*side, 3)."""
    from facedet3d.preview import preview
    from facedet3d.assets.bfm import METRES_PER_UNIT

    to_crop = preview.view_transform(np.asarray(asset.meta.pose.projection), asset.meta.box, side)
    v = to_crop(vertices_m / METRES_PER_UNIT)
    clay = preview.render(v, asset.faces, side, side)
    tex = preview.render(v, asset.faces, side, side, texture=asset.texture, uv=asset.uv)
    return np.hstack([clay, tex])


def add_parser(sub) -> None:
    p = sub.add_parser("pose", help="the fitted face posed with AUs -> .obj/.ply mesh or .png picture")
    p.add_argument("subject", help="FaceAsset folder written by `facedet3d fit`")
    p.add_argument("--au", action="append", metavar="N=VALUE", help="AU intensity 0..1, e.g. --au 12=0.8 (repeatable)")
    p.add_argument("--preset", help="emotion preset: happy, sad, surprise, fear, anger, disgust, contempt")
    p.add_argument("-o", "--out", required=True, help="OUT.obj, OUT.ply or OUT.png")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    import cv2

    from facedet3d.rig.pose import posed_vertices, target_aus
    from facedet3d.fit import faceasset
    from facedet3d.preview import preview

    out = Path(args.out)
    if out.suffix.lower() not in (".obj", ".ply", ".png"):
        raise BadRequest(f"-o must end in .obj, .ply or .png, not {out.name!r}")
    try:
        asset = faceasset.read(args.subject)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise BadRequest(f"{args.subject} is not a FaceAsset folder ({exc}); create one with `facedet3d fit`") from None
    aus, sides = target_aus(args.au, args.preset)
    verts = posed_vertices(asset, aus, sides)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".png":
        tmp = out.with_name(f".{out.stem}.tmp.png")
        if not cv2.imwrite(str(tmp), picture(asset, verts)[..., ::-1]):
            raise BadRequest(f"could not write {out}")
        tmp.replace(out)
    else:
        preview.write_mesh(out, verts, asset.faces, asset.uv if out.suffix.lower() == ".obj" else None)
    print(f"wrote {out}")
    return 0

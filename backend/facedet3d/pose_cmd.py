"""``facedet3d pose SUBJECT_DIR [--au 12=0.8 ...] [--preset happy] -o OUT.{obj,ply,png}``:
the fitted face posed with AUs, as a mesh file or a picture from the photo's viewpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from .errors import FaceDet3DError

PICTURE_SIDE = 512  # pixels


class BadRequest(FaceDet3DError):
    exit_code = 2


def posed_vertices(asset, au_vector: np.ndarray, unilateral: str | None = None) -> np.ndarray:
    """(N,3) metres: the asset's neutral mesh plus its rig's shapes weighted by the AUs."""
    from . import facs

    if asset.rig is None:
        raise BadRequest("this FaceAsset has no rig.npz; fit it again with the current `facedet3d fit`")
    names = [str(n) for n in asset.rig["names"]]
    w = facs.blendshape_weights(au_vector, names, unilateral)
    return asset.vertices + np.tensordot(w.astype(np.float32), asset.rig["blendshapes"], axes=1)


def target_aus(au_items: list[str] | None, preset: str | None) -> tuple[np.ndarray, str | None]:
    """AU vector (17,) from a preset and/or ``12=0.8`` items (items override the preset)."""
    from . import facs

    vec = np.zeros(len(facs.AU_IDS), np.float32)
    unilateral = None
    try:
        if preset:
            if preset not in facs.PRESETS:
                raise BadRequest(f"unknown preset {preset!r}; choose from {', '.join(facs.PRESETS)}")
            vec = facs.preset_aus(preset).astype(np.float32)
            unilateral = facs.CONTEMPT_SIDE if preset == "contempt" else None
        if au_items:
            for au, value in facs.parse_aus(au_items).items():
                vec[facs.AU_IDS.index(au)] = value
        return facs.normalise_aus(vec), unilateral
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def picture(asset, vertices_m: np.ndarray, side: int = PICTURE_SIDE) -> np.ndarray:
    """Clay-shaded | textured render from the photo's camera, side by side, (side, 2*side, 3)."""
    from . import preview
    from .bfm import METRES_PER_UNIT

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
    from . import faceasset, preview

    out = Path(args.out)
    if out.suffix.lower() not in (".obj", ".ply", ".png"):
        raise BadRequest(f"-o must end in .obj, .ply or .png, not {out.name!r}")
    try:
        asset = faceasset.read(args.subject)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise BadRequest(f"{args.subject} is not a FaceAsset folder ({exc}); create one with `facedet3d fit`") from None
    aus, unilateral = target_aus(args.au, args.preset)
    verts = posed_vertices(asset, aus, unilateral)
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

"""Does the neural render pass show the person's folds? (issue 11, "visible", the neural half)

    PYTHONPATH=backend python scripts/neural_folds.py SUBJECT_DIR [...] [--steps 400] [--json OUT] [--png OUT]

SUBJECT_DIR is a subject folder of ``scripts/personal_renders.py`` (``folds/asset`` holds the
enrolled ``personal_folds.npz``, ``real_neutral.png`` the photo, ``real_expr.png`` the real
expressive frame). The neural pass is fitted on the photo (``--steps``; kept in the asset when
already there) and renders the preset expression at the photo's view, 256², through the
backend's rasteriser (the same frame as Blender's passes give: tests/test_neural.py) with the
detail maps: none, DetP only, DetP + the person's folds; each with the cavity term (Cavity 1,
rest = DetP at the photo's AUs, as the add-on) and without it (0).

Reported per subject and fold region:
- ``folds``: ``fold_contrast.contrast`` of the folds' rendered log-luminance change (DetP +
  folds against DetP only) with the change the person's video showed: r, gain (1 = the
  video's contrast), RMS. The neural frames have no sampling noise, unlike Cycles at 32 spp.
- ``details_on_off``: mean |luminance change| in sRGB grey levels and the log-luminance RMS
  between DetP + folds and no details.
``--png`` writes a strip per subject: real neutral | real expression | neural, no details |
neural DetP + folds, cavity 0 | the same, cavity 1 | folds' change x 20 (cavity 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fold_contrast import contrast, fold_regions, photo_and_preset_aus, uv_splat  # noqa: E402

SIZE = 256


def luma(img: np.ndarray) -> np.ndarray:
    """Linear-light luminance of a float sRGB [0, 1] image."""
    from facedet3d.imaging.color import REC709_LUMA, srgb_to_linear

    return srgb_to_linear(np.clip(img, 0, 1)) @ np.asarray(REC709_LUMA, np.float32)


def render_subject(sub: Path, steps: int) -> dict:
    from facedet3d.detail.infer import shared_predictor
    from facedet3d.fit import faceasset
    from facedet3d.neural import NeuralConfig, geometry as geo, view_projection
    from facedet3d.neural.fit import fit_subject
    from facedet3d.neural.model import WEIGHTS_FILE
    from facedet3d.neural.render import load_cached, render_arrays
    from facedet3d.rig.pose import posed_vertices, target_aus

    preset = sub.name.rsplit("_", 1)[1]
    adir = sub / "folds" / "asset"
    if not (adir / WEIGHTS_FILE).is_file():
        fit_subject(adir, NeuralConfig(steps=steps), photo=str(sub / "real_neutral.png"))
    asset = faceasset.read(adir)
    aus, sides = target_aus(None, preset)
    x, _ = photo_and_preset_aus(asset, preset)
    pred = shared_predictor()
    full = pred.for_asset(asset, aus, sides=sides)
    rest = pred.for_asset(asset, {int(k): float(v) for k, v in (asset.meta.aus or {}).items()})
    folds, asset.folds = asset.folds, None
    detp = pred.for_asset(asset, aus, sides=sides)
    asset.folds = folds
    net, subject, _, faces, uv = load_cached(adir)
    verts = posed_vertices(asset, aus, sides)
    view = view_projection(asset.meta.pose.projection, asset.meta.box, SIZE,
                           centre_units=geo.units_from_metres(asset.vertices).mean(0))
    rows = [None, detp, full]
    out = {c: render_arrays(net, subject, faces, uv, verts, rows, view, SIZE, rest=rest, cavity=c) for c in (0.0, 1.0)}
    vr = geo.view_raster(geo.units_from_metres(verts), faces, uv, view, SIZE, SIZE)
    return {"asset": asset, "preset": preset, "renders": out, "vr": vr}


def measure(sub: Path, steps: int) -> tuple[dict, dict]:
    r = render_subject(sub, steps)
    vr = r["vr"]
    uvs = np.stack([(vr.grid[..., 0] + 1) / 2, (1 - vr.grid[..., 1]) / 2], -1)
    mask = cv2.erode(vr.mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    regs = fold_regions()
    res = {}
    for c, rend in r["renders"].items():
        img = rend["image"]
        logy = [np.log(np.maximum(luma(im), 1e-3)) for im in img]
        r_map, cnt = uv_splat(logy[2] - logy[1], uvs, mask)
        key = f"cavity{c:g}"
        res[key] = {"folds": contrast(r_map, cnt, r["asset"], r["preset"])}
        grey = np.abs(img[2] - img[0]).mean(-1) * 255  # sRGB grey levels, DetP + folds vs no details
        g_map, _ = uv_splat(grey, uvs, mask)
        l_map, _ = uv_splat(logy[2] - logy[0], uvs, mask)
        on_off = {}
        for name, m in regs.items():
            sel = m & (cnt > 0)
            if sel.sum() >= 200:
                on_off[name] = {"grey_levels": round(float(g_map[sel].mean()), 2),
                                "log_rms": round(float(np.sqrt((l_map[sel] ** 2).mean())), 4)}
        res[key]["details_on_off"] = on_off
    return res, r


def strip(sub: Path, r: dict) -> np.ndarray:
    from facedet3d.neural.render import composite

    rend0, rend1 = r["renders"][0.0], r["renders"][1.0]
    m = rend1["mask"]
    tiles = [cv2.resize(cv2.imread(str(sub / n))[..., ::-1], (SIZE, SIZE)) for n in ("real_neutral.png", "real_expr.png")]
    tiles += [composite(rend1["image"][0], m), composite(rend0["image"][2], m), composite(rend1["image"][2], m)]
    d = np.log(np.maximum(luma(rend1["image"][2]), 1e-3)) - np.log(np.maximum(luma(rend1["image"][1]), 1e-3))
    tiles.append(np.repeat((np.clip(0.5 + 20 * d * m, 0, 1) * 255).astype(np.uint8)[..., None], 3, -1))
    return np.concatenate(tiles, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("subjects", nargs="+")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--json")
    ap.add_argument("--png")
    args = ap.parse_args(argv)
    import torch

    from facedet3d.neural.fit import cpu_threads

    torch.set_num_threads(cpu_threads())
    res, rows = {}, []
    for s in args.subjects:
        sub = Path(s)
        res[sub.name], r = measure(sub, args.steps)
        for k, v in res[sub.name].items():
            print(sub.name, k, json.dumps(v["folds"].get("fold_regions")),
                  json.dumps(v["details_on_off"].get("fold_regions")), flush=True)
        if args.png:
            rows.append(strip(sub, r))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    if args.png and rows:
        cv2.imwrite(args.png, np.concatenate(rows, 0)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    return 0


if __name__ == "__main__":
    sys.exit(main())

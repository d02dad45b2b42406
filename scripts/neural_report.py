"""Figures and pictures of the neural render pass for one subject (not part of the product).

    .venv/bin/python scripts/neural_report.py out/JianzhuGuo/asset PHOTO [--steps 400] [--ablation] -o REPORT_DIR

Fits the pass (kept in the FaceAsset when already there), then writes into REPORT_DIR:
- ``views.png``: rows = neutral and the ``--preset`` expression (DetP details), columns =
  yaw 0 (the input view), +30, -30, each with and without details;
- ``report.json``: input-view PSNR / SSIM inside the face (render, low-res branch, plain
  textured mesh), and the detail response (``render.detail_response``: ratio of the rendered
  difference with vs without details inside vs outside the map's footprint, gain, corr) for
  the expression's DetP map at the input view; with ``--ablation`` the same for a second pass
  fitted without the Augmented Wrinkle and Detailed Shading losses (the paper's Fig. 8).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np


def detail_figures(asset_dir: Path, detail: np.ndarray, verts: np.ndarray, size: int) -> dict:
    from facedet3d.fit.faceasset import read
    from facedet3d.neural import view_projection
    from facedet3d.neural.render import detail_response, load_cached, render_arrays

    a = read(asset_dir)
    net, subject, meta, faces, uv = load_cached(asset_dir, "cpu")
    view = view_projection(a.meta.pose.projection, a.meta.box, size)
    r = render_arrays(net, subject, faces, uv, verts, [None, detail], view, size)
    return {"input_view": meta["report"]["metrics"], "detail_response": detail_response(r),
            "fit_s": meta["report"]["timings_s"], "losses": meta["config"]["losses"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("asset")
    ap.add_argument("photo")
    ap.add_argument("--preset", default="surprise")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--ablation", action="store_true")
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args(argv)
    import torch

    from facedet3d.api.expressions import preset_sides
    from facedet3d.detail.infer import shared_predictor
    from facedet3d.fit.faceasset import read
    from facedet3d.neural import NeuralConfig, neural_render, view_projection
    from facedet3d.neural.fit import cpu_threads, fit_subject
    from facedet3d.neural.geometry import units_from_metres
    from facedet3d.neural.model import WEIGHTS_FILE
    from facedet3d.neural.render import load_cached
    from facedet3d.rig.pose import posed_vertices, target_aus

    torch.set_num_threads(cpu_threads())
    asset_dir, out = Path(args.asset), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = NeuralConfig(steps=args.steps)
    if not (asset_dir / WEIGHTS_FILE).is_file():
        fit_subject(asset_dir, cfg, photo=args.photo, progress=lambda r: print("step", r["step"], round(r["total"], 4),
                                                                               f"{r['s']} s", flush=True))
    a = read(asset_dir)
    size = int(load_cached(asset_dir, "cpu")[2]["config"]["size"])
    pred = shared_predictor()
    aus_e, _ = target_aus(None, args.preset)
    rows, report = [], {}
    centre = units_from_metres(a.vertices).mean(0)
    for name, aus in (("neutral", np.zeros(17, np.float32)), (args.preset, aus_e)):
        verts = posed_vertices(a, aus)
        detail = pred.for_asset(a, aus, sides=preset_sides(args.preset if name != "neutral" else None))
        tiles = []
        for yaw in (0.0, 30.0, -30.0):
            view = view_projection(a.meta.pose.projection, a.meta.box, size, yaw_deg=yaw, centre_units=centre)
            for d in (detail, None):
                tiles.append(neural_render(asset_dir, verts, d, view, size, device="cpu"))
        rows.append(np.hstack(tiles))
        if name != "neutral":
            report["full"] = detail_figures(asset_dir, detail, verts, size)
            expr = (detail, verts)
    cv2.imwrite(str(out / "views.png"), np.vstack(rows)[..., ::-1])
    if args.ablation:
        with tempfile.TemporaryDirectory() as tmp:
            d2 = Path(tmp) / asset_dir.name
            shutil.copytree(asset_dir, d2, ignore=shutil.ignore_patterns("neural.*"))
            cfg2 = NeuralConfig(steps=args.steps)
            cfg2.losses.augw = cfg2.losses.dsl = 0.0
            fit_subject(d2, cfg2, photo=args.photo)
            report["no_augw_dsl"] = detail_figures(d2, expr[0], expr[1], size)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: {"psnr_ssim": v["input_view"]["render"], "detail_response": v["detail_response"]}
                      for k, v in report.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where, in scale, does a real expression change the face's shading, and how much of it does a
render reproduce? (issue 11, "the pictures show wrinkles where the real frames have them")

    PYTHONPATH=backend python scripts/whole_change.py SUBJECT_DIR [...] [--json OUT] [--figure OUT.png]

SUBJECT_DIR is one subject folder written by ``scripts/personal_renders.py``: the real neutral
frame (imported as the photo), the real expressive frame, and Cycles renders of the imported
face at the photo's own expression (frame 1) and at the preset (frame 2) with the details off
(``off``: the shape keys' geometry alone), DetP only (``detp``) and DetP + the person's folds
(``folds``). Every other measurement of issue 11 compares D(I) (a band-passed shading
estimate) with the prediction; this one compares what an eye compares, the whole log-luminance
change, neutral -> expression:

    real   = log Y(expressive frame's unwrap) - log Y(neutral frame's unwrap)
    render = log Y(render, frame 2) - log Y(render, frame 1)       (each splatted into UV)

Both frames are fitted with the clip's identity held (``FrameFitter``), unwrapped and
registered to the photo's own unwrap by the UV flow that folds enrolment uses; the render's
pixels land on UV texels through its UV pass. The change is split into octaves of scale
(differences of Gaussians, sigma in texels at 256², 1 texel = 1.2 mm on the face), and
per octave, over the skin of the fold regions seen in all of them, it reports the RMS of the
real change, of each render's change, their correlation r and the least-squares gain
<render, real> / <real, real>. ``--figure`` writes per subject the real change and the
render's change (folds) at one grey scale, fine (sigma < 5.6 texels) and coarse (5.6-24).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fold_contrast import fold_regions, luma8, uv_splat  # noqa: E402

S = 256
OCTAVES = (0.7, 1.4, 2.8, 5.6, 12.0, 24.0)  # DoG sigmas, texels at 256² (x 1.22 mm)
FINE, COARSE = (0.7, 5.6), (5.6, 24.0)
RENDERS = ("off", "detp", "folds")


def _logy_rgb(tex: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(luma8(np.ascontiguousarray(tex[..., ::-1])), 1e-3))


@functools.lru_cache(maxsize=1)
def _fitter(size: int):
    from facedet3d.detail.frames import FrameFitter

    return FrameFitter(size)  # the models load once for all subjects


def real_change(sub: Path, size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(S, S) real log-luminance change (expressive - neutral unwrap, both registered to the
    photo's unwrap) and the texels seen in both, skin only."""
    from facedet3d.detail import evaluate as ev
    from facedet3d.fit import faceasset

    asset = faceasset.read(sub / "folds" / "asset")
    ref = SimpleNamespace(texture=cv2.resize(asset.texture, (size, size), interpolation=cv2.INTER_AREA),
                          mask=cv2.resize(asset.texture_mask, (size, size), interpolation=cv2.INTER_NEAREST))
    rgb_n, rgb_e = (cv2.imread(str(sub / n))[..., ::-1].copy() for n in ("real_neutral.png", "real_expr.png"))
    fits = _fitter(size).fit_clip({0: rgb_n, 1: rgb_e}, neutral=0)  # the neutral frame's identity held
    if 1 not in fits:
        raise SystemExit(f"{sub / 'real_expr.png'}: no face found")
    fn, fe = fits[0], fits[1]
    (an, _), (ae, _) = ev.align_to(ref, fn), ev.align_to(ref, fe)
    seen = (an.mask > 127) & (ae.mask > 127)
    d = np.where(seen, _logy_rgb(ae.texture) - _logy_rgb(an.texture), 0.0).astype(np.float32)
    d = cv2.resize(d, (S, S), interpolation=cv2.INTER_AREA)
    seen = cv2.resize(seen.astype(np.float32), (S, S), interpolation=cv2.INTER_AREA) > 0.99
    return d, seen


def render_change(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(S, S) rendered log-luminance change frame 1 -> 2 in UV, and the texels both frames saw."""
    from facedet3d.neural.passes import read_passes

    maps = []
    for f in (1, 2):
        pf = read_passes(folder / "passes" / f"{f:04d}.exr")
        logy = np.log(np.maximum(luma8(cv2.imread(str(folder / "frames" / f"{f:04d}.png"), cv2.IMREAD_COLOR)), 1e-3))
        maps.append(uv_splat(logy, pf.uv, pf.mask))
    (a, ca), (b, cb) = maps
    seen = (ca > 0) & (cb > 0)
    return np.where(seen, b - a, 0.0).astype(np.float32), seen


def _stats(real: np.ndarray, ren: np.ndarray) -> dict:
    real, ren = real.astype(np.float64), ren.astype(np.float64)
    return {"rms": round(float(np.sqrt((ren ** 2).mean())), 5), "p99": round(float(np.percentile(np.abs(ren), 99)), 5),
            "r": round(float(np.corrcoef(real, ren)[0, 1]), 3) if ren.std() > 0 else None,
            "gain": round(float(real @ ren / max(real @ real, 1e-30)), 3)}


def measure(sub: Path) -> tuple[dict, dict]:
    from facedet3d.detail import evaluate as ev
    from facedet3d.fit import skin_regions

    real, seen = real_change(sub)
    rens = {k: render_change(sub / k) for k in RENDERS}
    w = seen & (skin_regions.skin_weight(S) > 0.5)
    for _, s in rens.values():
        w &= s
    wf = w.astype(np.float32)
    regs = fold_regions()
    out, maps = {}, {}
    for lo, hi in list(zip(OCTAVES[:-1], OCTAVES[1:])) + [FINE, COARSE]:
        key = f"{lo:g}-{hi:g}"
        rb = ev.bandpass(real, wf, (lo, hi))
        bands = {k: ev.bandpass(v, wf, (lo, hi)) for k, (v, _) in rens.items()}
        bands["details"] = bands["folds"] - bands["off"]  # what DetP + the folds add to the geometry's change
        maps[key] = (rb, bands["folds"], bands["off"])
        out[key] = {}
        for name, m in regs.items():
            sel = m & w
            if sel.sum() < 200:
                continue
            row = {"texels": int(sel.sum()), "rms_real": round(float(np.sqrt((rb[sel] ** 2).mean())), 5),
                   "p99_real": round(float(np.percentile(np.abs(rb[sel]), 99)), 5)}
            for k, v in bands.items():
                row[k] = _stats(rb[sel], v[sel])
            out[key][name] = row
    return out, maps


def _grey(m: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(128 + 127 * m / scale, 0, 255).astype(np.uint8)


def figure_row(name: str, maps: dict, tile: int = 256) -> np.ndarray:
    """real fine | folds render fine | real coarse | geometry-only render coarse | folds render coarse."""
    tiles = []
    for key, idx in ((f"{FINE[0]:g}-{FINE[1]:g}", (0, 1)), (f"{COARSE[0]:g}-{COARSE[1]:g}", (0, 2, 1))):
        ms = maps[key]
        scale = max(float(np.percentile(np.abs(ms[0][ms[0] != 0]), 99)), 1e-4)
        for i in idx:
            t = cv2.resize(_grey(ms[i], scale), (tile, tile), interpolation=cv2.INTER_AREA)
            cv2.putText(t, f"+-{scale:.3f}" if i == 0 else "", (4, tile - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1,
                        cv2.LINE_AA)
            tiles.append(t)
    row = np.concatenate(tiles, 1)
    cv2.putText(row, name, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 2, cv2.LINE_AA)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("subjects", nargs="+")
    ap.add_argument("--json")
    ap.add_argument("--figure")
    args = ap.parse_args(argv)
    res, rows = {}, []
    for s in args.subjects:
        name = Path(s).name
        res[name], maps = measure(Path(s))
        for key, v in res[name].items():
            fr = v.get("fold_regions")
            if fr:
                print(name, key, "real", fr["rms_real"], " ".join(f"{k}: rms {fr[k]['rms']} r {fr[k]['r']} g {fr[k]['gain']}"
                                                                  for k in RENDERS), flush=True)
        rows.append(figure_row(name.split("_level")[0], maps))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    if args.figure:
        cv2.imwrite(args.figure, np.concatenate(rows, 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does a render show the person's folds as strongly as their video did? (issue 11, "visible")

    PYTHONPATH=backend python scripts/fold_contrast.py SUBJECT_DIR [...]

SUBJECT_DIR is one subject folder written by ``scripts/personal_renders.py`` (``detp/`` and
``folds/`` renders of the same preset, with ``--passes``; ``folds/asset`` holds the enrolled
``personal_folds.npz``). The two renders differ only by the folds, so

    R = bp(log Y_folds - log Y_detp)      rendered log-luminance change, splatted into UV 256²
    P = bp(folds.change(photo AUs, preset AUs)) / METRES_PER_LOG_UNIT

P is the log-luminance change the person's own frames showed for that AU change (D(I) reads a
log intensity ratio as depth at ``METRES_PER_LOG_UNIT``), R what the render shows. Reported
over the skin the render saw, in the fold regions: r(R, P), the least-squares contrast gain
g = <R, P> / <P, P> (1 = the render shows the folds at the video's contrast; noise in R
does not bias it), and g per octave of P (``personal.OCTAVES``), from one multiple regression
of R on P's octave components. ``--json OUT`` writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

S = 256


def luma8(bgr: np.ndarray) -> np.ndarray:
    """Linear-light luminance of an 8-bit sRGB image in OpenCV's BGR order."""
    from facedet3d.imaging.color import REC709_LUMA, SRGB8_TO_LINEAR

    return SRGB8_TO_LINEAR[bgr[..., ::-1]] @ np.asarray(REC709_LUMA, np.float32)


def uv_log_change(on: Path, base: Path, passes: Path) -> tuple[np.ndarray, np.ndarray]:
    """(S, S) mean log-luminance difference (linear light) per UV texel, and texel pixel counts."""
    from facedet3d.neural.passes import read_passes

    def logy(p):
        return np.log(np.maximum(luma8(cv2.imread(str(p), cv2.IMREAD_COLOR)), 1e-3))

    pf = read_passes(passes)
    return uv_splat(logy(on) - logy(base), pf.uv, pf.mask)


def uv_splat(d: np.ndarray, uv: np.ndarray, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S, S) mean of the image ``d`` per UV texel (``uv`` (H, W, 2), v = 1 at the top) over
    the pixels ``sel``, and the texel pixel counts."""
    col = np.clip((uv[..., 0] * S).astype(int), 0, S - 1)[sel]
    row = np.clip(((1.0 - uv[..., 1]) * S).astype(int), 0, S - 1)[sel]
    idx = row * S + col
    cnt = np.bincount(idx, minlength=S * S).astype(np.float32)
    tot = np.bincount(idx, weights=d[sel], minlength=S * S).astype(np.float32)
    return (tot / np.maximum(cnt, 1)).reshape(S, S), cnt.reshape(S, S)


def photo_and_preset_aus(asset, preset: str) -> tuple[dict, dict]:
    from facedet3d.rig.facs import AU_IDS, normalise_aus, preset_aus

    x = normalise_aus({int(k): float(v) for k, v in (asset.meta.aus or {}).items()})
    return x, normalise_aus({a: float(v) for a, v in zip(AU_IDS, preset_aus(preset))})


def contrast(r_map: np.ndarray, cnt: np.ndarray, asset, preset: str) -> dict:
    """Per region: r(R, P), gain <R,P>/<P,P>, per-octave gains and both RMS for the rendered
    log-luminance change ``r_map`` (UV, with texel counts ``cnt``) of the folds of ``asset``."""
    from facedet3d.detail import evaluate as ev
    from facedet3d.detail import personal
    from facedet3d.fit.detail_input import METRES_PER_LOG_UNIT

    folds = personal.from_arrays(asset.folds)
    x, y = photo_and_preset_aus(asset, preset)
    w = ((cnt > 0) & folds.seen).astype(np.float32)
    R = ev.bandpass(r_map, w, personal.BAND)
    p_m = folds.change(x, y) / METRES_PER_LOG_UNIT
    P = ev.bandpass(p_m, w, personal.BAND)
    octs = personal.octaves(p_m)
    out = {}
    for name, m in fold_regions().items():
        sel = m & (w > 0) & (np.abs(P) > 0)
        if sel.sum() < 200:
            continue
        p, r = P[sel], R[sel]
        X = np.stack([o[sel] for o in octs], 1)
        g_oct, *_ = np.linalg.lstsq(X, r, rcond=None)
        out[name] = {"texels": int(sel.sum()), "r": round(float(np.corrcoef(p, r)[0, 1]), 3),
                     "gain": round(float(p @ r / (p @ p)), 3),
                     "gain_per_octave": [round(float(g), 3) for g in g_oct],
                     "rms_real_log": round(float(np.sqrt((p ** 2).mean())), 5),
                     "rms_render_log": round(float(np.sqrt((r ** 2).mean())), 5)}
    return out


def fold_regions() -> dict:
    """The evaluation's UV regions (S²) plus their union, "fold_regions"."""
    from facedet3d.detail import evaluate as ev

    regs = dict(ev.regions(S))
    regs["fold_regions"] = np.zeros((S, S), bool)
    for k in ("crows_feet", "nasolabial", "forehead", "glabella"):
        regs["fold_regions"] |= regs[k]
    return regs


def measure(sub: Path, preset: str | None = None) -> dict:
    from facedet3d.fit import faceasset

    preset = preset or sub.name.rsplit("_", 1)[1]
    asset = faceasset.read(sub / "folds" / "asset")
    f = sorted((sub / "folds" / "frames").glob("*.png"))[-1].name
    r_map, cnt = uv_log_change(sub / "folds" / "frames" / f, sub / "detp" / "frames" / f,
                               sub / "folds" / "passes" / f.replace(".png", ".exr"))
    return contrast(r_map, cnt, asset, preset)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("subjects", nargs="+")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    res = {Path(s).name: measure(Path(s)) for s in args.subjects}
    for k, v in res.items():
        print(k, json.dumps(v.get("fold_regions")), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

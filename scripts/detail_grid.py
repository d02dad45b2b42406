"""Pictures of predicted details for people to look at (not part of the product).

    .venv/bin/python scripts/detail_grid.py out/JianzhuGuo/asset -o grid.png [--age YEARS]

One PNG: row 1 the subject's input map D(I_x) and DetP's map for each of the seven EMFACS
presets (shaded relief, ``detail_input.shade_preview``); row 2 what each preset changed
against the photo's own expression (signed: blue = deeper, red = raised, same scale for all);
rows 3-4 the same for single AUs at intensity 1. Each tile is labelled.
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

from facedet3d.api.expressions import DEFAULT_AGE_YEARS


def _label(img: np.ndarray, text: str) -> np.ndarray:
    img = np.ascontiguousarray(img)
    cv2.putText(img, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def _signed(d: np.ndarray, scale_m: float) -> np.ndarray:
    t = np.clip(d / scale_m, -1, 1)  # > 0 raised, < 0 deeper (metres along the normal)
    out = np.full(d.shape + (3,), 235, np.float32)  # RGB
    out[..., 1] -= 235 * np.abs(t)
    out[..., 0] -= 235 * np.clip(-t, 0, 1)  # deeper: red and green go -> blue
    out[..., 2] -= 235 * np.clip(t, 0, 1)   # raised: blue and green go -> red
    return np.clip(out, 0, 255).astype(np.uint8)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("asset")
    ap.add_argument("--age", type=float, default=DEFAULT_AGE_YEARS)
    ap.add_argument("--scale-mm", type=float, default=0.15, help="full colour of the change rows, mm")
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args(argv)
    from facedet3d.detail.infer import shared_predictor
    from facedet3d.fit.detail_input import shade_preview
    from facedet3d.fit.faceasset import read
    from facedet3d.api.expressions import AU_IDS, PRESETS, preset_aus, preset_sides

    a = read(args.asset)
    pred = shared_predictor()
    x = {int(k): float(v) for k, v in (a.meta.aus or {}).items()}
    base = pred.for_asset(a, np.array([x.get(au, 0.0) for au in AU_IDS], np.float32), age=args.age)
    scale = args.scale_mm * 1e-3
    top, diff = [_label(shade_preview(base), "photo expr.")], [_label(_signed(base * 0, scale), "change:")]
    for name in PRESETS:
        d = pred.for_asset(a, preset_aus(name), age=args.age, sides=preset_sides(name))
        top.append(_label(shade_preview(d), name))
        diff.append(_label(_signed(d - base, scale), f"{name} {np.abs(d - base).max() * 1e3:.2f}mm"))
    rows = [np.hstack(top), np.hstack(diff)]
    aus = [au for au in AU_IDS if au not in (25, 26, 45)][:14]
    for half in (aus[:7], aus[7:14]):
        tiles = [_label(shade_preview(base), "photo expr.")]
        for au in half:
            y = np.zeros(len(AU_IDS), np.float32)
            y[AU_IDS.index(au)] = 1.0
            d = pred.for_asset(a, y, age=args.age)
            tiles.append(_label(_signed(d - base, scale), f"AU{au} {np.abs(d - base).max() * 1e3:.2f}mm"))
        rows.append(np.hstack(tiles))
    cv2.imwrite(args.out, cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

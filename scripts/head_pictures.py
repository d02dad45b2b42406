"""The README's head pictures from fitted FaceAssets (``facedet3d fit PHOTO -o DIR``).

    python scripts/head_pictures.py OUT_DIR ASSET_DIR [ASSET_DIR ...]

writes into OUT_DIR:
- ``turntable_<name>.jpg``: yaw -90, -45, 0, 45, 90 degrees; top row neutral, bottom row
  the mouth open (AU25 = AU26 = 1);
- ``closeups.jpg``: one column per asset; the eyes (neutral), the open mouth, and the
  mouth in the surprise and happy presets;
- ``mouth_<name>.jpg``: the open mouth from the front, clay and textured, larger.

The pictures are software rasters (``preview.views``), orthographic, one light near the
viewer; the crops are centred on the face's own landmarks (eyes: 36..47, mouth: 48..67).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from facedet3d.fit import faceasset
from facedet3d.preview.views import render_items
from facedet3d.rig.head import view_items
from facedet3d.rig.pose import posed_head, posed_vertices, target_aus

YAWS = (-90, -45, 0, 45, 90)
OPEN = ["25=1", "26=1"]  # the open mouth: lips part and full jaw drop of the AU table


def posed(asset, items=None, preset=None):
    aus, sides = target_aus(items, preset)
    return posed_vertices(asset, aus, sides), posed_head(asset, aus, sides)


def crop(asset, verts, parts, ids, extent_m, side, textured=True, yaw=0.0):
    centre = verts[asset.landmarks[ids]].mean(0)
    return render_items(view_items(asset, verts, parts, textured), yaw_deg=yaw, side=side,
                        centre=centre, extent=extent_m)


def turntable(asset, side=200) -> np.ndarray:
    rows = []
    for items in (None, OPEN):
        v, p = posed(asset, items)
        allv = np.concatenate([v] + list(p.values()))
        c = allv.mean(0)
        ext = float(np.ptp(allv, 0).max()) * 1.05
        rows.append(np.hstack([render_items(view_items(asset, v, p), yaw_deg=y, side=side, centre=c, extent=ext)
                               for y in YAWS]))
    return np.vstack(rows)


def closeups(assets, side=240) -> np.ndarray:
    cols = []
    for a in assets:
        v0, p0 = posed(a)
        tiles = [crop(a, v0, p0, np.r_[36:48], 0.085, side)]
        for items, preset in ((OPEN, None), (None, "surprise"), (None, "happy")):
            v, p = posed(a, items, preset)
            tiles.append(crop(a, v, p, np.r_[48:68], 0.075, side))
        cols.append(np.vstack(tiles))
    return np.hstack(cols)


def mouth(asset, side=360) -> np.ndarray:
    v, p = posed(asset, OPEN)
    return np.hstack([crop(asset, v, p, np.r_[48:68], 0.06, side, textured=False),
                      crop(asset, v, p, np.r_[48:68], 0.06, side),
                      crop(asset, v, p, np.r_[48:68], 0.06, side, yaw=35.0)])


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    assets = [(Path(d).name, faceasset.read(d)) for d in argv[1:]]
    for name, a in assets:
        if a.head is None:
            raise SystemExit(f"{name}: the FaceAsset has no head.npz; fit it again")
    jpg = [cv2.IMWRITE_JPEG_QUALITY, 90]
    for name, a in assets:
        cv2.imwrite(str(out / f"turntable_{name}.jpg"), turntable(a)[..., ::-1], jpg)
        cv2.imwrite(str(out / f"mouth_{name}.jpg"), mouth(a)[..., ::-1], jpg)
    cv2.imwrite(str(out / "closeups.jpg"), closeups([a for _, a in assets])[..., ::-1], jpg)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Pictures of a dataset for people: a contact sheet (photo / depth / normals /
synthesized) and a quality strip (best and worst fits with landmarks and mask outline).

    python -m facedet3d.dataset.sheet OUT -o sheet.png [--quality-strip strip.png] [--rows 4]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

TILE = 200  # pixels per tile side


def depth_rgb(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Near = bright (viridis: yellow near, blue far) over the mask's own depth range,
    black outside."""
    out = np.zeros(depth.shape + (3,), np.uint8)
    if mask.any():
        d = depth[mask]
        lo, hi = np.percentile(d, 1), np.percentile(d, 99)
        t = np.clip((hi - depth) / max(hi - lo, 1e-9), 0, 1)
        col = cv2.applyColorMap((t * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)[..., ::-1]
        out[mask] = col[mask]
    return out


def normals_rgb(n: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(n + 1) / 2 as RGB (x red, y green, z blue), black outside the mask."""
    out = ((n * 0.5 + 0.5) * 255).clip(0, 255).astype(np.uint8)
    out[~mask] = 0
    return out


def _crop_box(mask: np.ndarray, pad: float = 0.15) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return 0, 0, mask.shape[1], mask.shape[0]
    x1, x2, y1, y2 = xs.min(), xs.max(), ys.min(), ys.max()
    side = int(max(x2 - x1, y2 - y1) * (1 + 2 * pad))
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    return cx - side // 2, cy - side // 2, side, side


def _tile(img: np.ndarray, box) -> np.ndarray:
    x, y, w, h = box
    H, W = img.shape[:2]
    canvas = np.zeros((h, w, 3), np.uint8)
    ix1, iy1, ix2, iy2 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    canvas[iy1 - y:iy2 - y, ix1 - x:ix2 - x] = img[iy1:iy2, ix1:ix2]
    return cv2.resize(canvas, (TILE, TILE), interpolation=cv2.INTER_AREA)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    cv2.putText(img, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def contact_sheet(out: str | Path, rows: int = 4, pick: list[tuple[str, float]] | None = None) -> np.ndarray:
    """Per photo (the first ``rows``): photo, depth, normals, then per synthesized target
    (all, or those in ``pick`` as (expression, yaw)) its RGB and normals. Tiles share the
    photo's face crop."""
    from facedet3d.dataset.reader import iter_shard, shard_paths

    samples = {}
    for p in shard_paths(out):
        for s in iter_shard(p):
            samples[s["key"]] = s
    photos = [s for s in samples.values() if s["info"]["kind"] == "photo"]
    lines = []
    for s in photos[:rows]:
        box = _crop_box(s["mask"])
        tiles = [_label(_tile(s["rgb"], box), Path(s["info"]["relpath"]).name), _label(_tile(depth_rgb(s["depth"], s["mask"]), box), "depth"),
                 _label(_tile(normals_rgb(s["normals"], s["mask"]), box), "normals")]
        targets = sorted((t for t in samples.values() if t["info"].get("source_key") == s["key"]),
                         key=lambda t: (t["info"]["expression"], t["info"]["view_yaw_deg"]))
        if pick:
            targets = [t for t in targets if (t["info"]["expression"], t["info"]["view_yaw_deg"]) in pick]
        for t in targets:
            tag = f"{t['info']['expression']} {t['info']['view_yaw_deg']:+g}"
            tiles += [_label(_tile(t["rgb"], box), tag), _label(_tile(normals_rgb(t["normals"], t["mask"]), box), tag + " n")]
        if targets:  # the last target's forehead at full resolution: DetP's folds
            t = targets[-1]
            lm = np.asarray(t["info"]["landmarks68"])
            w = max(8, int(np.ptp(lm[17:27, 0]) * 0.7))
            cx, cy = lm[17:27].mean(0)
            zoom = (int(cx - w), int(cy - 1.45 * w), 2 * w, 2 * w)
            tiles.append(_label(_tile(normals_rgb(t["normals"], t["mask"]), zoom), "brow zoom, last"))
        lines.append(np.hstack(tiles))
    width = max(line.shape[1] for line in lines)
    return np.vstack([np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0))) for line in lines])


def quality_strip(out: str | Path, n: int = 5) -> np.ndarray:
    """Top row: the ``n`` best-scored fits; bottom row: the ``n`` worst. Green: the fit's 68
    landmarks; red: MTCNN's five points (when recorded); white: the mask's outline."""
    import pyarrow.parquet as pq

    from facedet3d.dataset.reader import iter_shard

    rows = [r for r in pq.read_table(Path(out) / "manifest.parquet").to_pylist()
            if r["kind"] == "photo" and r["status"] == "ok" and r["quality"] is not None]
    rows.sort(key=lambda r: -r["quality"])
    pick = rows[:n] + rows[-n:]
    want = {r["key"]: r for r in pick}
    got = {}
    for shard in sorted({r["shard"] for r in pick}):
        for s in iter_shard(Path(out) / shard):
            if s["key"] in want:
                got[s["key"]] = s
    tiles = []
    for r in pick:
        s = got[r["key"]]
        img = s["rgb"].copy()
        cnts, _ = cv2.findContours(s["mask"].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(img, cnts, -1, (255, 255, 255), 2)
        k = s["rgb"].shape[1] / r["photo_width"]
        for x, y in s["info"]["landmarks68"]:
            cv2.circle(img, (int(x), int(y)), 3, (0, 255, 0), -1)
        for x, y in s["info"].get("mtcnn5_photo_px") or []:
            cv2.circle(img, (int((x + 0.5) * k - 0.5), int((y + 0.5) * k - 0.5)), 7, (255, 0, 0), 2)
        t = _tile(img, _crop_box(s["mask"], 0.3))
        tiles.append(_label(t, f"q {r['quality']:.2f} lm {r['lm_residual']:.2f} ph {r['photo_residual']:.2f}"))
    half = len(tiles) // 2
    return np.vstack([np.hstack(tiles[:half]), np.hstack(tiles[half:])])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dataset")
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--quality-strip")
    ap.add_argument("--pick", help="targets to show, e.g. happy:0,surprise:30 (default: all)")
    a = ap.parse_args(argv)
    pick = [(e, float(v)) for e, v in (p.split(":") for p in a.pick.split(","))] if a.pick else None
    cv2.imwrite(a.out, contact_sheet(a.dataset, a.rows, pick)[..., ::-1])
    if a.quality_strip:
        cv2.imwrite(a.quality_strip, quality_strip(a.dataset)[..., ::-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

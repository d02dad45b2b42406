"""Where do a person's real frames fold, averaged over held-out frames, and where does the
model enrolled on their other frames put the folds? (issue 11, "visible")

    PYTHONPATH=backend python scripts/plateau_compare.py CORPUS [--out FIG.png] [--json OUT]

CORPUS: a ``facedet3d corpus`` folder built as for ``scripts/personal_folds.py`` (frames
registered per clip by UV flow, ``--coarse-sigma 0.03``). Per clip, the frames are split in
time as there (first half enrols ``personal.fit_folds``, a gap, the second half is held out).
In the held-out half, per expression (smile: AU12; brow raise: AU1+2; frown: AU4), the
frames where that AU score is >= ``HIGH`` form the expressive plateau E and those where it is
<= ``LOW`` the neutral plateau N (other AUs may differ: the prediction uses every AU's mean). Then

    observed  = mean bp D(E) - mean bp D(N)          (the real frames' fold change, averaged)
    predicted = folds.change(mean AU(N), mean AU(E))  (the enrolled model at the same AU change)

both at ``personal.BAND``, in log-luminance units (D(I) reads a log ratio as depth at
``METRES_PER_LOG_UNIT``). Averaging several frames takes out much of D(I)'s frame-to-frame
noise, which dominates a single pair. The observed change's own reliability is the split-half
r of E1 - N1 against E2 - N2 (each plateau's earlier and later frames: neighbouring frames
share codec noise, so alternate frames would overstate it); r / sqrt(reliability) estimates the
agreement a noiseless observation would show. The figure puts observed and predicted side by
side at one grey scale per row (mid grey = 0, darker = darker skin, ± the observed 99th
percentile), so the amplitudes compare as well as the places.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fold_contrast import fold_regions  # noqa: E402

EXPRESSIONS = {"smile": (12,), "brow raise": (1, 2), "frown": (4,)}
HIGH, LOW = 0.4, 0.15  # AU score of the expressive plateau, and ceiling of the neutral one
MIN_FRAMES = 3  # per plateau
GAP = 12  # video frames left out around the split, as personal_folds.py


def _mean(bp: np.ndarray, msk: np.ndarray, idx) -> tuple[np.ndarray, np.ndarray]:
    """Masked mean over frames ``idx`` and the texels seen in at least 2 of them."""
    w = msk[idx].astype(np.float32)
    n = w.sum(0)
    return np.where(n > 0, (bp[idx] * w).sum(0) / np.maximum(n, 1), 0.0), n >= 2


def _r(a, b, sel) -> float:
    return float(np.corrcoef(a[sel], b[sel])[0, 1]) if sel.sum() > 50 else float("nan")


def compare(det, msk, aus, frames, skin, fold_sel, au_ids) -> list[dict]:
    """Per expression with both plateaus in the held-out half: r, gain, RMS and the maps."""
    from facedet3d.detail import evaluate as ev
    from facedet3d.detail import personal
    from facedet3d.fit.detail_input import METRES_PER_LOG_UNIT

    split = np.median(frames)
    enrol, test = np.where(frames < split - GAP / 2)[0], np.where(frames > split + GAP / 2)[0]
    if len(enrol) < 6 or len(test) < 2 * MIN_FRAMES:
        return []
    # band-passed D(I) in log-luminance units (the folds are fitted on the same, in any unit)
    bp = np.stack([ev.bandpass(d, m.astype(np.float32), personal.BAND) for d, m in zip(det, msk)])
    bp /= METRES_PER_LOG_UNIT
    folds = personal.fit_folds(bp[enrol], msk[enrol], aus[enrol])
    folds.basis *= skin[None]
    out = []
    for name, ids in EXPRESSIONS.items():
        cols = [au_ids.index(k) for k in ids]
        expr = test[aus[test][:, cols].mean(1) >= HIGH]
        neutral = test[aus[test][:, cols].mean(1) <= LOW]
        if len(expr) < MIN_FRAMES or len(neutral) < MIN_FRAMES:
            continue
        me, se = _mean(bp, msk, expr)
        mn, sn = _mean(bp, msk, neutral)
        obs = me - mn
        pred = folds.change(aus[neutral].mean(0), aus[expr].mean(0))
        sel = se & sn & folds.seen & fold_sel & (skin > 0.5)
        # split-half reliability of the averaged observation
        ke, kn = len(expr) // 2, len(neutral) // 2
        h1 = _mean(bp, msk, expr[:ke])[0] - _mean(bp, msk, neutral[:kn])[0]
        h2 = _mean(bp, msk, expr[ke:])[0] - _mean(bp, msk, neutral[kn:])[0]
        rel = _r(h1, h2, sel) if min(len(expr), len(neutral)) >= 2 * 2 else float("nan")
        r = _r(pred, obs, sel)
        p, o = pred[sel], obs[sel]
        out.append({"expression": name, "expr_frames": len(expr), "neutral_frames": len(neutral),
                    "r": round(r, 3), "reliability": round(rel, 3),
                    "r_disattenuated": round(r / np.sqrt(rel), 3) if rel > 0.05 else None,
                    "gain": round(float(p @ o / max(p @ p, 1e-12)), 3),
                    "rms_observed_pct": round(100 * float(np.sqrt((o ** 2).mean())), 3),
                    "rms_predicted_pct": round(100 * float(np.sqrt((p ** 2).mean())), 3),
                    "_maps": (obs * (se & sn & folds.seen), pred, sel)})
    return out


def figure(rows: list, path: Path) -> None:
    """Observed | predicted per (clip, expression) row, one grey scale per row."""
    tiles = []
    for clip, c in rows:
        obs, pred, sel = c["_maps"]
        s = np.percentile(np.abs(obs[sel]), 99) + 1e-9
        pair = []
        for m, label in ((obs, "observed (held-out frames)"), (pred, "predicted (enrolled)")):
            t = cv2.cvtColor(np.clip(128 + 127 * m / s, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
            cv2.putText(t, label, (4, 250), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 200, 255), 1, cv2.LINE_AA)
            pair.append(t)
        cv2.putText(pair[0], f"{clip[:22]} {c['expression']}", (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                    (0, 200, 255), 1, cv2.LINE_AA)
        cv2.putText(pair[1], f"r {c['r']:+.2f}  +-{100 * s:.1f} %", (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                    (0, 200, 255), 1, cv2.LINE_AA)
        tiles.append(np.concatenate(pair, 1))
    if len(tiles) % 2:
        tiles.append(np.full_like(tiles[0], 128))
    grid = [np.concatenate(tiles[i:i + 2], 1) for i in range(0, len(tiles), 2)]
    cv2.imwrite(str(path), np.concatenate(grid, 0), [cv2.IMWRITE_JPEG_QUALITY, 90])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus")
    ap.add_argument("--out", help="figure (.jpg)")
    ap.add_argument("--json")
    a = ap.parse_args(argv)

    from facedet3d.fit.skin_regions import skin_weight
    from facedet3d.rig.facs import AU_IDS

    root = Path(a.corpus)
    index = json.loads((root / "index.json").read_text())
    unit = float(index.get("unit_m", 1e-4))
    skin, fold_sel, au_ids = skin_weight(256), fold_regions()["fold_regions"], list(AU_IDS)
    rows, res = [], {}
    for clip in sorted(index["clips"]):
        with np.load(root / "clips" / f"{clip}.npz") as z:
            det, msk = z["detail"].astype(np.float32) * unit, z["mask"] > 127
            aus, frames = z["aus"].astype(np.float32), z["frames"]
        order = np.argsort(frames)
        cs = compare(det[order], msk[order], aus[order], frames[order], skin, fold_sel, au_ids)
        res[clip] = [{k: v for k, v in c.items() if k != "_maps"} for c in cs]
        rows += [(clip, c) for c in cs]
        for c in res[clip]:
            print(clip, json.dumps(c), flush=True)
    if rows:
        rs = np.array([c["r"] for _, c in rows])
        dis = [c["r_disattenuated"] for _, c in rows if c["r_disattenuated"] is not None]
        print(f"{len(rows)} (clip, expression) rows: mean r {rs.mean():+.3f} ({int((rs < 0).sum())} < 0), "
              f"mean reliability {np.nanmean([c['reliability'] for _, c in rows]):+.3f}, "
              f"mean disattenuated r {np.mean(dis):+.3f} over {len(dis)}")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    if a.out and rows:
        figure(rows, Path(a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
